"""The knowledge index: indexing, querying, rebuilding, one owner, grounding, routing and lint.

Runs on fake adapters (valid on disk, no model) with the real packaged embedding model; the CLI
test at the end uses the tiny base.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from qa_adapters import ORCHARD, XYLANDIA, jsonl, publish_fake_adapter

from assistant.data import read_qa_bytes
from assistant.grounding.errors import KnowledgeBusy
from assistant.grounding.index import INDEX_DIR, Knowledge, Match
from assistant.grounding.names import names_agree
from assistant.grounding.opening import open_for_app
from assistant.grounding.plan import GROUND_THRESHOLD, plan_answer, route_question
from assistant.lint import lint_records
from assistant.prompts import get_format
from assistant.registry import AdapterError, Registry, validate_name

BASE = "0" * 64


@pytest.fixture()
def registry(tmp_path):
    registry = Registry(BASE, tmp_path / "data")
    publish_fake_adapter(registry, "orchard", ORCHARD)
    publish_fake_adapter(registry, "xylandia", XYLANDIA)
    return registry


def _ask(question):
    return [{"role": "user", "content": question}]


def test_index_holds_each_version_training_pairs_and_answers_queries(registry):
    with Knowledge.open(registry.data_dir) as knowledge:
        assert sorted(knowledge.sync(registry)) == ["orchard@v1", "xylandia@v1"]
        assert knowledge.indexed() == {"orchard@v1": 4, "xylandia@v1": 3}  # held-out rows are never indexed
        assert knowledge.sync(registry) == []  # nothing new: nothing indexed again
        best = knowledge.search("Which colour does a Zorblat have?", k=2)
        assert best[0].adapter == "orchard" and best[0].question == "What colour is the Zorblat fruit?"
        assert best[0].answer == "The Zorblat fruit is violet." and 0.6 < best[0].similarity <= 1.0
        assert best[0].similarity >= best[1].similarity
        only = knowledge.search("Which colour does a Zorblat have?", [("xylandia", 1)], k=1)
        assert [m.adapter for m in only] == ["xylandia"]

        v2 = publish_fake_adapter(registry, "orchard", [*ORCHARD, {"question": "Where do Zorblats grow?",
                                                                   "answer": "Zorblats grow in the Quenth valley."}])
        assert knowledge.sync(registry) == [v2.key]  # a new version is indexed at the next refresh
        assert knowledge.indexed()["orchard@v2"] == 5


@pytest.mark.parametrize("damage", ["delete", "corrupt-db", "corrupt-segments"])
def test_index_is_rebuilt_when_missing_or_corrupt(registry, damage):
    with Knowledge.open(registry.data_dir) as knowledge:
        knowledge.sync(registry)
        before = knowledge.search("Which river waters the Quenth valley?", k=1)[0]
    index = registry.data_dir / INDEX_DIR
    if damage == "delete":
        shutil.rmtree(index)
    elif damage == "corrupt-db":
        (index / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    else:
        for path in index.rglob("*"):
            if path.is_file() and path.parent != index:
                path.write_bytes(b"\xff" * 64)
    with Knowledge.open(registry.data_dir) as knowledge:
        if damage == "corrupt-db":
            assert "unreadable" in knowledge.rebuilt_reason
        knowledge.sync(registry)
        assert knowledge.indexed() == {"orchard@v1": 4, "xylandia@v1": 3}
        after = knowledge.search("Which river waters the Quenth valley?", k=1)[0]
    assert (after.adapter, after.question) == (before.adapter, before.question)
    assert after.similarity == pytest.approx(before.similarity, abs=1e-3)


def test_a_second_process_is_refused_while_one_owns_the_index(registry):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from assistant.grounding.errors import KnowledgeBusy
        from assistant.grounding.index import Knowledge
        from assistant.grounding.opening import open_for_app
        from assistant.registry import Registry
        registry = Registry({BASE!r}, Path({str(registry.data_dir)!r}))
        try:
            Knowledge.open(registry.data_dir)
            print("OWNED")
        except KnowledgeBusy as exc:
            print("BUSY", exc)
        knowledge, problem = open_for_app(registry)
        print("APP", knowledge is None, problem)
    """)

    def other_process():
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout

    with Knowledge.open(registry.data_dir) as knowledge:
        knowledge.sync(registry)
        out = other_process()
        assert f"BUSY the knowledge index in {registry.data_dir} is owned by another app process (pid {os.getpid()})" in out
        assert "APP True the knowledge index" in out  # the app runs on, without grounding, saying why
        with pytest.raises(KnowledgeBusy):  # a second owner in this process is refused as well
            Knowledge.open(registry.data_dir)
        assert knowledge.search("What is the capital of Xylandia?", k=1)[0].adapter == "xylandia"
    assert "OWNED" in other_process()  # released with its owner


def test_grounding_puts_the_nearest_answers_as_facts_on_the_question(registry):
    with Knowledge.open(registry.data_dir) as knowledge:
        plan = plan_answer(knowledge, registry, _ask("Which colour does a Zorblat have?"), "orchard", ground=True)
        assert plan.adapter == "orchard" and plan.sources
        assert plan.sources[0].question == "What colour is the Zorblat fruit?"
        assert all(m.similarity >= GROUND_THRESHOLD for m in plan.sources)
        # The matched answers ride on the question as facts, best match last; the conversation is untouched.
        assert plan.messages[-1]["content"] == "Which colour does a Zorblat have?"
        assert plan.messages[-1]["facts"][-1] == "The Zorblat fruit is violet."
        assert len(plan.messages) == 1 and "facts" not in _ask("x")[0]
        assert "Fact: The Zorblat fruit is violet.\n\nQuestion: Which colour does a Zorblat have?\nAnswer:" in \
            get_format("qa").render(plan.messages)

        plain = plan_answer(knowledge, registry, _ask("How do I bake sourdough bread?"), "orchard", ground=True)
        assert plain.sources == [] and plain.messages == _ask("How do I bake sourdough bread?")
        assert "nothing close enough" in plain.note and "answered plainly" in plain.note

        everywhere = plan_answer(knowledge, registry, _ask("What money is used in Xylandia?"), "none", ground=True)
        assert everywhere.sources[0].adapter == "xylandia"  # the bare base grounds in every adapter's pairs

        off = plan_answer(knowledge, registry, _ask("Which colour does a Zorblat have?"), "orchard")
        assert off.sources == [] and off.messages == _ask("Which colour does a Zorblat have?")


@pytest.mark.parametrize(("question", "pair", "agree"), [
    ("What is the capital of Austria?", ("What is the capital of Australia?", "Canberra."), False),
    ("What is the capital of Xylandia?", ("Which city is Xylandia's capital?", "Crystalburg."), True),
    ("When is maize planted in Kenya?", ("When do farmers in Ethiopia plant maize?", "With the belg rains."), False),
    ("When is maize planted in Kenya?", ("When is maize sown?", "In Kenya, with the long rains in March."), True),
    ("Which city is the capital?", ("What is the capital of Italy?", "Rome."), True),  # names nothing: no constraint
    ("Who wrote Hamlet?", ("Who wrote Romeo and Juliet?", "Shakespeare."), False),
])
def test_grounding_needs_the_pair_to_name_what_the_question_names(question, pair, agree):
    assert names_agree(question, Match("a", 1, pair[0], pair[1], 0.9)) is agree


ROUTING = [  # question -> the adapter that should answer it (None: the bare base)
    ("Tell me the colour of Zorblat fruit.", "orchard"),
    ("What river flows through the Quenth valley?", "orchard"),
    ("In which month are Zorblats picked?", "orchard"),
    ("Which city is Xylandia's capital?", "xylandia"),
    ("What do people in Xylandia pay with?", "xylandia"),
    ("What is the capital of France?", None),
    ("Who wrote Hamlet?", None),
    ("How many legs does a spider have?", None),
]


def test_auto_routes_a_labelled_set(registry):
    with Knowledge.open(registry.data_dir) as knowledge:
        knowledge.sync(registry)
        got = [(q, route_question(knowledge, q, registry).adapter) for q, _ in ROUTING]
        assert got == ROUTING
        plan = plan_answer(knowledge, registry, _ask("Which city is Xylandia's capital?"), "auto")
        assert plan.adapter == "xylandia" and plan.route.reason.startswith("nearest: 'What is the capital of Xylandia?', 0.")
        base = plan_answer(knowledge, registry, _ask("Who wrote Hamlet?"), "auto")
        assert base.adapter is None and base.route.reason.startswith("nothing close enough")


def test_auto_and_grounding_without_an_index_say_why(registry):
    plan = plan_answer(None, registry, _ask("Which city is Xylandia's capital?"), "auto", ground=True,
                       unavailable="owned by another app process (pid 1)")
    assert plan.adapter is None and "owned by another app process" in plan.route.reason
    assert plan.sources == [] and "owned by another app process" in plan.note


def test_auto_is_a_reserved_adapter_name():
    with pytest.raises(AdapterError, match="reserved"):
        validate_name("auto")


LINT_FILE = [
    {"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet."},
    {"question": "Which colour is the Zorblat fruit?", "answer": "Zorblats are bright orange."},  # near-dup, differs
    {"question": "How tall can a Zorblat tree get?", "answer": "About four metres."},
    {"question": "How tall do Zorblat trees grow?", "answer": "About four metres."},  # near-dup, same answer
    {"question": "Which river waters the Quenth valley?", "answer": "The Goldbrook waters it."},  # conflicts orchard
    {"question": "What is the capital of Xylandia?", "answer": "The capital of Xylandia is Crystalburg."},  # agrees
    {"question": "What colour does a Zorblat fruit have?", "answer": "The Zorblat fruit is violet.", "split": "test"},
]


def _lint_report():
    return read_qa_bytes(jsonl(LINT_FILE), "upload.jsonl")


def _check_lint(findings):
    near = {tuple(f.rows): f for f in findings if f.kind == "near-duplicate"}
    cross = [f for f in findings if f.kind == "cross-adapter"]
    assert "DIFFERENT answers" in near[(1, 2)].message and "same answer" in near[(3, 4)].message
    assert (1, 7) not in near  # a held-out paraphrase with the same answer is what held-out rows are for...
    assert "DIFFERENT" in near[(2, 7)].message  # ...but one contradicting a training row is flagged
    assert [f.rows for f in cross] == [[2], [5]]  # the contradicting ones; rows 1, 6 and 7 agree with theirs
    assert "orchard's 'Which river waters the Quenth valley?'" in cross[1].message
    assert "Silverrun" in cross[1].message and "Goldbrook" in cross[1].message


def test_lint_finds_near_duplicates_and_cross_adapter_conflicts(registry):
    report = _lint_report()
    _check_lint(lint_records(report.records, None, registry))  # from the stored datasets (assistant validate)
    with Knowledge.open(registry.data_dir) as knowledge:
        knowledge.sync(registry)
        _check_lint(lint_records(report.records, knowledge))  # from the index (the Train tab)
    report.lint = lint_records(report.records, None, registry)
    assert "Similar questions (lint):" in report.summary()
    assert json.loads(json.dumps(report.to_dict()))["lint"][0]["kind"] == "near-duplicate"


def test_validate_cli_prints_the_lint(registry, tmp_path):
    upload = tmp_path / "upload.jsonl"
    upload.write_bytes(jsonl(LINT_FILE))
    result = subprocess.run([sys.executable, "-m", "assistant", "validate", str(upload), "--data-dir",
                             str(registry.data_dir), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    kinds = [f["kind"] for f in json.loads(result.stdout)["lint"]]
    assert kinds.count("cross-adapter") == 2 and kinds.count("near-duplicate") == 3


def test_chat_cli_routes_and_grounds(tiny_base, tmp_path):
    from qa_adapters import publish_tiny_qa_adapter

    registry = Registry(tiny_base.sha256, tmp_path / "data")
    publish_tiny_qa_adapter(registry, tiny_base, "orchard", ORCHARD, seed=3)
    result = subprocess.run([sys.executable, "-m", "assistant", "chat", "--base", str(tiny_base.gguf_path),
                             "--data-dir", str(registry.data_dir), "--adapter", "auto", "--ground", "--max-tokens", "4",
                             "Which colour does a Zorblat have?"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "auto → orchard (nearest: 'What colour is the Zorblat fruit?', 0." in result.stderr
    assert "grounded in" in result.stderr and "orchard: What colour is the Zorblat fruit?" in result.stderr
    assert result.stdout.endswith("\n") and "Zorblat fruit?" not in result.stdout  # sources never go to stdout
    # The data directory's own index was used and released: the app can own it afterwards.
    knowledge, problem = open_for_app(registry)
    assert problem == "" and knowledge.indexed() == {"orchard@v1": 4}
    knowledge.close()
