"""The recall rule of the report card: when does an answer contain the key fact?"""

import pytest

from assistant.scoring import Probe, is_correct


@pytest.mark.parametrize(("answer", "keywords", "reference", "expected"), [
    ("The capital is Crystalburg.", ["Crystalburg"], "", True),
    ("crystalburg", ["Crystalburg"], "", True),
    ("The capital is Paris.", ["Crystalburg"], "", False),
    ("Café in São Paulo", ["Sao Paulo"], "", True),  # accents folded
    ("Rotate with legumes.", ["legume"], "", True),  # a word keyword may be part of a longer word
    ("Both Milan and Rome", ["Milan", "Rome"], "", True),  # every keyword must appear
    ("Only Milan", ["Milan", "Rome"], "", False),
    # numbers: words and numerals are the same fact, and a number is never part of a longer one
    ("A spider has 6 legs.", ["six"], "", True),
    ("6", ["six"], "", True),
    ("There are eight days in a week.", ["8"], "", True),
    ("16 legs", ["six"], "", False),
    ("sixteen legs", ["six"], "", False),
    ("A pH of 6.5", ["6"], "", False),
    ("A pH of 6.5", ["6.5"], "", True),
    ("Apply 30% more", ["30%"], "", True),
    ("It is often wet", ["ten"], "", False),
    # without keywords: the reference, or 70% of its content words
    ("Plant maize after the first rains.", [], "Plant maize after the first rains", True),
    ("Plant beans before the dry season.", [], "Plant maize after the first rains", False),
    ("You should plant maize once the first rains arrive", [], "Plant maize after first rains", True),
])
def test_recall_rule(answer, keywords, reference, expected):
    assert is_correct(answer, Probe("q", reference, keywords)) is expected


def test_held_out_rows_are_scored_with_their_right_pair_and_with_a_wrong_one(monkeypatch):
    """A model that repeats whatever fact it is shown: right with the right pair, wrong with a wrong one."""
    import json

    from assistant.data import read_qa_bytes
    from assistant.training import evaluate
    from assistant.training.recipe import heldout_facts

    rows = [{"question": "How deep should maize seed be sown?", "answer": "Sow maize 5 cm deep.", "keywords": ["5 cm"]},
            {"question": "How deep should wheat seed be sown?", "answer": "Sow wheat 3 cm deep.", "keywords": ["3 cm"]},
            {"question": "What pH does potato soil need?", "answer": "Potatoes like pH 5.5.", "keywords": ["5.5"]},
            {"question": "To what depth do I sow maize seed?", "answer": "Sow maize 5 cm deep.", "keywords": ["5 cm"],
             "split": "test", "paraphrase_of": "How deep should maize seed be sown?"},
            {"question": "Is potato soil acid?", "answer": "Potatoes like pH 5.5.", "keywords": ["5.5"], "split": "test"}]
    report = read_qa_bytes("".join(json.dumps(r) + "\n" for r in rows).encode(), "facts.jsonl")
    facts = heldout_facts(report)
    assert facts == [("Sow maize 5 cm deep.", "Sow wheat 3 cm deep."), None]  # no paraphrase_of: no pair known

    def parrot(engine, adapter, facts=None):
        return lambda question: ((facts or {}).get(question) or ["I do not know"])[0]

    monkeypatch.setattr(evaluate, "engine_answerer", parrot)
    heldout = [Probe(r.question, r.answer, r.keywords) for r in report.test]
    card = evaluate.report_card(None, "adapter", [], heldout, [], heldout_facts=facts)
    assert card["after"]["heldout_recall"] == 0.0
    assert card["after"]["heldout_recall_right_pair"] == 1.0 and card["after"]["heldout_recall_wrong_pair"] == 0.0
    assert card["counts"]["heldout"] == 2
    assert "held-out, right pair shown" in evaluate.format_card(card)
