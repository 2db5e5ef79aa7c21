"""The next version: the gate's rule on stubbed scores, the dataset it is trained on, a refused
candidate that stays one, and one real run on the tiny model from answered pairs to v2 serving."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from assistant import serving
from assistant.data import load_qa_file
from assistant.registry import Registry
from assistant.training import gate, next_version, recipe

PAIRS = [{"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is deep orange.",
          "item_ids": [7], "answered_by": "amina"},
         {"question": "When is Quenth corn sown?", "answer": "Quenth corn is sown after the first rains.",
          "item_ids": [8, 9], "answered_by": "juma"}]


def _card(heldout=None, retention=None, new=None, counts=None):
    card = {"counts": counts or {"heldout_recall": 50, "retention": 40, "new_recall": 10}}
    for key, value in (("heldout_recall", heldout), ("retention", retention), ("new_recall", new)):
        if value is not None:
            card[key] = value
    return card


# the rule -----------------------------------------------------------------------------------------

def test_the_gate_passes_a_version_that_regresses_within_tolerance():
    decision = gate.compare(_card(0.80, 0.95, 0.1), _card(0.76, 0.90, 0.9))
    assert decision["passed"] and decision["reasons"] == [] and [r["ok"] for r in decision["rows"]] == [True] * 3


def test_the_gate_refuses_a_regression_and_says_which_and_by_how_much():
    decision = gate.compare(_card(0.80, 0.95, 0.2), _card(0.70, 0.95, 0.9))
    assert not decision["passed"]
    assert decision["reasons"] == ["held-out recall (paraphrases) fell from 80% to 70% (at most 5% may be lost)"]
    refused = gate.compare(_card(0.8, 0.95, 0.5), _card(0.8, 0.95, 0.4))
    assert refused["reasons"] == ["newly answered questions fell from 50% to 40% (at most 0% may be lost)"]
    assert "stays a candidate (v1 still serves)" in gate.describe({**refused, "candidate_version": 2, "serving_version": 1})


def test_a_small_set_allows_one_question_and_an_unmeasured_set_is_skipped():
    small = {"heldout_recall": 4, "retention": 40, "new_recall": 2}
    assert gate.compare(_card(1.0, 1.0, 0.5, small), _card(0.75, 1.0, 0.5, small))["passed"]  # one of four
    assert not gate.compare(_card(1.0, 1.0, 0.5, small), _card(0.5, 1.0, 0.5, small))["passed"]  # two of four
    decision = gate.compare(_card(new=0.0), _card(new=1.0))  # no held-out rows, a base that knows no probe
    assert decision["passed"] and [r["metric"] for r in decision["rows"]] == ["new_recall"]


# the dataset -------------------------------------------------------------------------------------

def test_pairs_are_checked_one_by_one():
    for bad, message in (([], "no newly answered questions"), ([{"question": "Q?"}], "answered pair 1 has no answer"),
                         ([{"question": "Q?", "answer": "x" * 70000}], "the answer is 70000 characters"),
                         ([{"question": "Q?", "answer": "A", "item_ids": ["1"]}], "item_ids must be a list of numbers"),
                         (["Q?"], "answered pair 1 is not an object")):
        with pytest.raises(ValueError, match=message):
            next_version.clean_pairs(bad)
    twice = next_version.clean_pairs([{"question": "Q?", "answer": "A", "item_ids": [1]},
                                      {"question": "q", "answer": "B", "item_ids": [2]}])
    assert twice == [{"question": "q", "answer": "B", "item_ids": [1, 2], "answered_by": ""}]


def test_an_edited_question_replaces_its_row_and_the_lineage_says_who_added_what(fact_file):
    old = load_qa_file(fact_file)
    current = SimpleNamespace(name="facts", version=1, manifest={"dataset": {"sha256": old.sha256}})
    rows, lineage, replaced = next_version.merge(old, next_version.clean_pairs(PAIRS), current, "amina")
    questions = [r["question"] for r in rows]
    assert questions.count("What colour is the Zorblat fruit?") == 1 and len(rows) == len(old.records) + 1
    assert {"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is deep orange.",
            "split": "train"} in rows
    assert replaced == {"what colour is the zorblat fruit"}
    assert lineage["trained_from"] == {"name": "facts", "version": 1, "dataset_sha256": old.sha256}
    assert [p["question"] for p in lineage["added"]] == ["When is Quenth corn sown?"]
    assert lineage["replaced"][0]["old_answer"] == "The Zorblat fruit is violet." and lineage["replaced"][0]["item_ids"] == [7]


# the whole way ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_v1(tiny_base, tmp_path_factory):
    """A data directory where 'facts' v1 was trained by the tiny recipe (no replay: it stays quick)."""
    from tiny import train_facts_v1

    return train_facts_v1(tiny_base, tmp_path_factory, epochs=2)


def _v1(tiny_base, data_dir, trained_v1):
    shutil.copytree(trained_v1, data_dir, dirs_exist_ok=True)
    return Registry(tiny_base.sha256, data_dir)


def test_a_refused_candidate_is_kept_and_v1_still_serves(tiny_base, tmp_path, trained_v1, monkeypatch):
    registry = _v1(tiny_base, tmp_path, trained_v1)
    src = registry.get("facts").path

    def fake_train(cfg, base, registry, report, name, lineage=None, **_):  # a copy of v1, published as a candidate
        staging = registry.new_staging()
        for path in src.iterdir():
            if path.name != "manifest.json":
                shutil.copy(path, staging / path.name)
        (staging / "lineage.json").write_text(json.dumps(lineage))
        adapter = registry.publish(staging, name, {**registry.get("facts").manifest, "candidate": True})
        return SimpleNamespace(adapter=adapter, steps=1, train_seconds=0.0)

    counts = {"heldout_recall": 50, "new_recall": 2}
    scores = {1: _card(0.9, None, 0.0, counts), 2: _card(0.6, None, 1.0, counts)}  # learnt the new, lost the old
    monkeypatch.setattr(recipe, "train", fake_train)
    monkeypatch.setattr(gate, "base_knows", lambda *_: [])
    monkeypatch.setattr(gate, "measure", lambda engine, adapter, *_: {**scores[adapter.version], "details": {}})
    marked = []
    assistant = SimpleNamespace(registry=registry, base=tiny_base, engine=SimpleNamespace(unload_adapter=lambda key: None))
    result = next_version.next_version(assistant, "facts", PAIRS, by="amina", tolerance=0.05,
                                       mark_trained=lambda ids, v: marked.append((ids, v)))
    assert not result.promoted and result.adapter.version == 2 and marked == []
    assert Registry(tiny_base.sha256, tmp_path).get("facts").version == 1, "v1 serves, after a restart too"
    rows = serving.describe_versions(registry, "facts")
    assert [r["status"] for r in rows] == ["serving", "candidate"]
    assert rows[1]["decision"]["reasons"] == ["held-out recall (paraphrases) fell from 90% to 60% (at most 5% may be lost)"]
    assert rows[1]["lineage"]["added"] == 1 and rows[1]["lineage"]["answered_by"] == ["amina", "juma"]
    assert registry.promote("facts", 2).version == 2, "a trainer may still promote it by hand"
    scores[3] = _card(0.88, None, 1.0, counts)  # within 5 points: v3 passes, serves, its items are done
    scores[2] = scores[1]
    result = next_version.next_version(assistant, "facts", PAIRS, by="amina",
                                       mark_trained=lambda ids, v: marked.append((ids, v)))
    assert result.promoted and registry.get("facts").version == 3 and marked == [([7, 8, 9], 3)]


def test_next_version_on_the_tiny_model_trains_gates_and_serves(tiny_base, tmp_path, trained_v1, capsys):
    """The worker's own command (`assistant adapters next --progress-json`, as assistant.jobs runs
    it), here in this process: the trainers' queue's answered questions in, the tiny model trained,
    gated and served, the queue's items marked trained with v2."""
    from assistant import questions
    from assistant.cli import main
    from assistant.store import Store

    registry = _v1(tiny_base, tmp_path / "data", trained_v1)
    store = Store.open(registry.data_dir)
    ids = [questions.record_ask(store, "facts", p["question"], asker) for p, asker in zip(PAIRS, ("joseph", "mary"),
                                                                                          strict=True)]
    for item_id, pair in zip(ids, PAIRS, strict=True):
        questions.answer(store, item_id, pair["answer"], by=pair["answered_by"])
    code = main(["adapters", "next", "facts", "--by", "amina", "--progress-json",
                 "--base", str(tiny_base.gguf_path), "--data-dir", str(registry.data_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = events[-1]
    assert result["phase"] == "result" and result["promoted"] and result["decision"]["passed"], result
    assert {r["metric"] for r in result["decision"]["rows"]} >= {"heldout_recall", "new_recall"}
    assert any(e["phase"] == "gate" for e in events) and events[-2]["message"].startswith("v2 passed the gate")
    assert [(questions.get(store, i).status, questions.get(store, i).trained_version) for i in ids] == [("trained", 2)] * 2
    assert questions.answered_pairs(store, "facts") == []
    restarted = Registry(tiny_base.sha256, registry.data_dir)
    v2 = restarted.get("facts")
    assert v2.version == 2 and v2.candidate and v2.manifest["training"]["epochs"] == 2, "same settings as v1"
    stored = load_qa_file(v2.path / "dataset.jsonl")
    assert len(stored.train) == 4 and len(stored.test) == 1
    assert v2.lineage["trained_from"]["version"] == 1 and v2.lineage["trained_by"] == "amina"
    assert sorted(i for p in v2.lineage["added"] + v2.lineage["replaced"] for i in p["item_ids"]) == sorted(ids)
    assert v2.manifest["report_card"]["counts"]["train"] == 4
    assert restarted.rollback("facts", 1).version == 1 and Registry(tiny_base.sha256, registry.data_dir).get("facts").version == 1


def test_the_job_worker_is_asked_for_the_next_version(tmp_path, monkeypatch):
    from assistant.jobs import JobManager

    jobs = JobManager("tiny.gguf", tmp_path)
    monkeypatch.setattr(jobs, "_launch", lambda job: None)
    job = jobs.next_version("facts", by="amina", pairs_file=tmp_path / "pairs.json")
    assert job.kind == "next" and jobs.latest("next") is job
    assert job.command[3:10] == ["adapters", "next", "facts", "--by", "amina", "--pairs", str(tmp_path / "pairs.json")]
