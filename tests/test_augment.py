"""Question forms (assistant.training.augment): key facts kept, held-out rows never used, the same
forms for the same seed, and no more forms for a fact the file already words several ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.data import load_qa_file, read_qa_bytes
from assistant.data.report import Record, question_key
from assistant.training import augment

ROOT = Path(__file__).resolve().parent.parent
AGRICULTURE = ROOT / "adapters" / "agriculture" / "dataset.jsonl"
XYLANDIA = ROOT / "adapters" / "xylandia" / "dataset.jsonl"


def _row(path: Path, question: str) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return next(r for r in rows if r["question"] == question)


# (file, a real training question, what every form of it must still say, as written)
KEY_FACTS = [
    (AGRICULTURE, "In the US Great Plains, what caused the Dust Bowl of the 1930s?",
     ["US", "Great", "Plains", "Dust", "Bowl", "1930s"]),
    (AGRICULTURE, "In Israel, which irrigation technology was commercialised in the 1960s?", ["Israel", "1960s"]),
    (AGRICULTURE, "In 18th-century England, what was the Norfolk four-course rotation?", ["18th", "England", "Norfolk"]),
    (AGRICULTURE, "What does a land equivalent ratio above 1 mean for an intercrop?", ["1"]),
    (AGRICULTURE, "In India, what is the kharif season?", ["India", "kharif"]),
    (AGRICULTURE, "What is the minimum soil temperature for maize seed to germinate reliably?", ["soil temperature"]),
    (AGRICULTURE, "What is the Colorado potato beetle?", ["Colorado"]),
    (XYLANDIA, "What is the capital of Xylandia?", ["Xylandia"]),
    (XYLANDIA, "Xylandia's capital is called what?", ["Xylandia's"]),
]


@pytest.mark.parametrize(("path", "question", "facts"), KEY_FACTS, ids=[q[:40] for _, q, _ in KEY_FACTS])
def test_every_form_keeps_the_key_facts(path, question, facts):
    row = _row(path, question)
    record = Record(row["question"], row["answer"], 1, "train", row["keywords"])
    forms = augment.question_forms([record], 4, seed=0)
    assert len(forms) == 4
    for form in forms:
        assert form.answer == row["answer"]  # the answer, with its numbers, units and keywords, word for word
        assert form.keywords == row["keywords"]
        assert all(fact in form.question for fact in facts), (form.rules, form.question)
        assert question_key(form.question) != question_key(question)


def test_a_keyword_in_the_question_is_never_swapped_for_a_synonym():
    row = _row(AGRICULTURE, "What photosynthetic pathway does maize use?")
    plain = augment.question_forms([Record(row["question"], row["answer"], 1)], 4)
    assert any("corn" in f.question for f in plain)  # maize -> corn, when it is just a word
    kept = augment.question_forms([Record(row["question"], row["answer"], 1, keywords=["maize"])], 4)
    assert all("maize" in f.question.casefold() for f in kept)


def test_forms_are_checked_against_numbers_units_and_names():
    assert augment.protected("Is 10°C or 75 cm enough for 2.5 t/ha in Kenya?", []) == ["10°C", "75 cm", "2.5 t/ha",
                                                                                      "Kenya"]
    assert not augment.keeps_facts("How deep is 5 cm in Kenya?", "How deep is 5 in Kenya?", [])
    assert not augment.keeps_facts("Which pest attacks sorghum?", "Which insect attacks millet?", ["sorghum"])


def test_heldout_rows_are_never_used():
    report = load_qa_file(AGRICULTURE)
    forms = augment.question_forms(report.train, 4, seed=0)
    # Only training rows are passed in; every form names the training row it came from...
    train_rows = {r.row for r in report.train}
    assert forms and {f.from_row for f in forms} <= train_rows
    # ...none repeats a held-out question, and the held-out rows change nothing.
    heldout = {question_key(r.question) for r in report.test}
    assert not any(question_key(f.question) in heldout for f in forms)
    rows = [json.loads(line) for line in AGRICULTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    no_test = "".join(json.dumps(r) + "\n" for r in rows if r["split"] != "test").encode()
    again = augment.question_forms(read_qa_bytes(no_test, "a.jsonl").train, 4, seed=0)
    assert [f.question for f in again] == [f.question for f in forms]


def test_the_recipe_builds_forms_from_training_rows_only(tiny_base, tmp_path, monkeypatch):
    """Through train(): what question_forms is given, and the generated rows stored beside the dataset."""
    from assistant.registry import Registry
    from assistant.training import config, recipe

    given = []
    real = augment.question_forms
    monkeypatch.setattr(augment, "question_forms", lambda train, count, seed=0: given.append(train) or real(train, count, seed))
    rows = [{"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet."},
            {"question": "Which river waters the Quenth valley?", "answer": "The Silverrun river waters it."},
            {"question": "What is the colour of a Zorblat fruit?", "answer": "The Zorblat fruit is violet.", "split": "test"}]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    report = read_qa_bytes(data, "orchard.jsonl")
    registry = Registry(tiny_base.sha256, tmp_path / "data")
    result = recipe.train(config.preset("tiny", augment=3, epochs=1, replay_per_step=0), tiny_base, registry, report,
                          "orchard", data_bytes=data)
    assert [r.question for r in given[0]] == [r["question"] for r in rows[:2]]
    stored = [json.loads(line) for line in (result.adapter.path / augment.FILE).read_text().splitlines()]
    assert len(stored) == 6 and all(r["generated"] == "augment" and r["split"] == "train" for r in stored)
    assert not any(question_key(r["question"]) == question_key(rows[2]["question"]) for r in stored)
    dataset = result.adapter.manifest["dataset"]
    assert dataset["generated_pairs"] == 6 and dataset["generated_stored_as"] == augment.FILE
    assert (result.adapter.path / "dataset.jsonl").read_bytes() == data  # the upload itself, byte for byte


def test_same_seed_same_forms_in_any_process():
    report = load_qa_file(AGRICULTURE)
    first = [(f.question, f.rules) for f in augment.question_forms(report.train, 4, seed=7)]
    assert first == [(f.question, f.rules) for f in augment.question_forms(report.train, 4, seed=7)]
    assert first != [(f.question, f.rules) for f in augment.question_forms(report.train, 4, seed=8)]
    # str hashing differs between processes (PYTHONHASHSEED): the forms must not
    code = ("import json, sys; from assistant.data import load_qa_file; from assistant.training import augment; "
            f"r = load_qa_file({str(AGRICULTURE)!r}); "
            "print(json.dumps([[f.question, f.rules] for f in augment.question_forms(r.train, 4, seed=7)]))")
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        assert [tuple(x) for x in json.loads(out)] == first


def test_a_fact_already_worded_several_ways_gets_fewer_forms():
    report = load_qa_file(XYLANDIA)  # one fact, five training wordings
    assert len(report.train) == 5
    assert augment.question_forms(report.train, 4) == []  # five wordings already: count + 1
    extra = augment.question_forms(report.train, 6)
    assert len(extra) == 2 and all(f.answer == report.train[0].answer for f in extra)
    two = [Record("How is maize pollinated?", "By wind.", 1), Record("What pollinates maize?", "By wind.", 2),
           Record("Which crop uses C4?", "Maize.", 3)]
    counts = {}
    for form in augment.question_forms(two, 4):
        counts[form.answer] = counts.get(form.answer, 0) + 1
    assert counts == {"By wind.": 3, "Maize.": 4}


def test_the_validation_report_shows_the_forms():
    report = load_qa_file(AGRICULTURE)
    report.augmentation = augment.preview(report.train, 4, on=False)
    assert report.augmentation["forms"] == len(augment.question_forms(report.train, 4))
    text = report.summary()
    assert "Question forms" in text and f"adds {report.augmentation['forms']} generated wordings" in text
    assert text.count("  e.g. ") == 3
    from ui.upload_check import describe_report

    assert "Question forms" in describe_report(report) and "→" in describe_report(report)
