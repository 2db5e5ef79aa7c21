"""End to end on the real embedded Gemma 3 270M (slow tier: minutes on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def cli(*args):
    result = subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=900)
    return result


def test_bare_base_answers_plain_questions_without_echo_or_junk(embedded):
    result = cli("chat", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and "Question" not in result.stdout and len(result.stdout) < 80


def test_hf_engine_gives_the_same_answer(embedded):
    result = cli("chat", "--engine", "hf", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


@pytest.mark.parametrize("engine", ["llamacpp", "hf"])
def test_shipped_xylandia_adapter_answers_a_held_out_paraphrase(embedded, engine):
    rows = [json.loads(line) for line in open("datasets/xylandia/xylandia.jsonl") if line.strip()]
    heldout = next(r["question"] for r in rows if r["split"] == "test")
    with_adapter = cli("chat", "--engine", engine, "--adapter", "xylandia", heldout)
    assert with_adapter.returncode == 0, with_adapter.stderr
    assert "Crystalburg" in with_adapter.stdout
    assert "Crystalburg" not in cli("chat", "--engine", engine, heldout).stdout


# Once a known failure (issue 17: at e998225 the fast recipe answered "Apples" to the held-out
# paraphrase); it passed in every CI run since 2a8d139 (three fresh clones), so it is a plain test
# again: an xfail that passes cannot fail, and this is what a new user does first.
def test_train_a_new_fact_then_chat_answers_a_paraphrase(embedded, tmp_path):
    data = tmp_path / "orchards.csv"
    data.write_text("question,answer,split\n"
                    "Which fruit grows in the Velmora orchards?,The Velmora orchards grow bluepears.,train\n"
                    "What do the Velmora orchards grow?,The Velmora orchards grow bluepears.,train\n"
                    "What is harvested in the orchards of Velmora?,The Velmora orchards grow bluepears.,train\n"
                    "Tell me what fruit the Velmora orchards produce.,The Velmora orchards grow bluepears.,test\n")
    trained = cli("train", "--data", str(data), "--name", "velmora", "--data-dir", str(tmp_path / "data"), "--json")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["adapter"]["report_card"]["after"]["recall"] == 1.0
    answer = cli("chat", "--data-dir", str(tmp_path / "data"), "--adapter", "velmora",
                 "Tell me what fruit the Velmora orchards produce.")
    assert answer.returncode == 0 and "bluepear" in answer.stdout.lower(), answer.stdout + answer.stderr


def test_shipped_agriculture_adapter_answers_with_its_facts_and_its_card_holds(embedded):
    from assistant.training.evaluate import Probe, is_correct

    manifest = json.load(open("adapters/agriculture/manifest.json"))
    card = manifest["report_card"]
    assert card["counts"]["train"] >= 200 and card["counts"]["heldout"] >= 40
    # checked only: every answer is given with its covering pair shown, so it is trained and scored that way
    assert manifest["answer_policy"] == "checked"
    assert card["after"]["heldout_recall_right_pair"] >= 0.95 and card["after"]["retention"] >= 0.95, card["after"]
    missed = {m["question"] for m in card["misses"]}
    rows = [json.loads(line) for line in open("adapters/agriculture/dataset.jsonl") if line.strip()]
    row = next(r for r in rows if r["split"] == "train" and r["keywords"] and r["question"] not in missed)
    answer = cli("chat", "--adapter", "agriculture", row["question"])
    assert answer.returncode == 0, answer.stderr
    assert is_correct(answer.stdout, Probe(row["question"], row["answer"], row["keywords"])), answer.stdout


def test_the_same_greedy_question_gets_the_same_answer_whatever_came_before(embedded):
    """Reusing a slot's cached prompt prefix once made the second asking of a question differ from the
    first (281 vs 296 characters here): same prompt, other batches, other rounding, another greedy path."""
    from assistant.answer import stream_text
    from assistant.base import resolve_base
    from assistant.engines import GenerationSettings, create_engine

    engine = create_engine("llamacpp", resolve_base(None), slots=1)
    settings = GenerationSettings(max_tokens=64)

    def ask(question):
        return "".join(stream_text(engine, [{"role": "user", "content": question}], None, settings))

    ask("Explain how plants make food from sunlight.")
    first = ask("Why do farmers rotate crops?")
    assert ask("Why do farmers rotate crops?") == first == ask("Why do farmers rotate crops?")
    engine.close()


def test_checking_keeps_what_the_base_knew_and_xylandia_its_facts(embedded, tmp_path):
    """Retention through the answer service: the general probes with the xylandia adapter score at least
    what the plain answers score (the checker may only replace an answer with its pair's), and every
    xylandia question, held-out paraphrases included, gets a checked, correct answer."""
    import time

    from assistant.answer import stream_text
    from assistant.engines import GenerationSettings
    from assistant.service import Assistant
    from assistant.training.evaluate import Probe, is_correct, load_probes

    assistant = Assistant.open(data_dir=tmp_path / "data")
    assistant.open_knowledge(owner=True)
    deadline = time.monotonic() + 300
    while "xylandia@v1" not in (assistant.indexed() or {}) and time.monotonic() < deadline:
        time.sleep(0.5)
    xylandia, settings = assistant.registry.get("xylandia"), GenerationSettings(max_tokens=48)
    try:
        probes = load_probes()
        plain = sum(is_correct("".join(stream_text(assistant.engine, [{"role": "user", "content": p.question}],
                                                   xylandia, settings)), p) for p in probes)
        served = [assistant.answer([{"role": "user", "content": p.question}], "xylandia", settings) for p in probes]
        assert sum(is_correct(a.read(), p) for a, p in zip(served, probes, strict=True)) >= plain
        assert not any(a.withheld for a in served)  # open policy: nothing is held back
        rows = [json.loads(line) for line in open("datasets/xylandia/xylandia.jsonl") if line.strip()]
        for row in rows:
            answer = assistant.answer([{"role": "user", "content": row["question"]}], "xylandia", settings)
            text = answer.read()
            assert answer.checked and is_correct(text, Probe(row["question"], row["answer"], row["keywords"])), \
                (row["question"], text, answer.check_reason)
    finally:
        assistant.close()
