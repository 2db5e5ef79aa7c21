"""Grounding-aware training examples (assistant.training.grounded), table-driven."""

from __future__ import annotations

from assistant.training.grounded import examples, nearest_others, words

PAIRS = [("How deep should maize seed be sown?", "Sow maize 5 cm deep."),
         ("How deep should wheat seed be sown?", "Sow wheat 3 cm deep."),
         ("When is maize harvested?", "Maize is harvested at black layer."),
         ("What pH does potato soil need?", "Potatoes like pH 5.5."),
         ("At what depth is maize seed planted?", "Sow maize 5 cm deep.")]  # another wording of the first


def test_distractors_are_the_most_alike_other_facts_never_the_same_fact():
    assert words("How deep should maize seed be sown?") == {"deep", "maize", "seed", "sown"}
    assert nearest_others(PAIRS, 0, 2) == [1, 2]  # wheat sowing shares most words; the rewording is excluded
    assert 4 not in nearest_others(PAIRS, 0, 4) and 0 not in nearest_others(PAIRS, 4, 4)
    assert nearest_others(PAIRS[:1], 0, 2) == []


def test_every_pair_is_shown_alone_among_distractors_and_some_with_distractors_only():
    made = examples(PAIRS, distractors=2, without_pair=1.0, seed=0)
    for question, answer in PAIRS:
        shown = [facts for q, a, facts in made if q == question and a == answer]
        assert [answer] in shown
        assert any(answer in facts and len(facts) == 3 for facts in shown)
        assert any(answer not in facts and len(facts) == 2 for facts in shown)  # without_pair=1: always
    assert all(a == dict(PAIRS)[q] for q, a, _ in made)
    assert not any(answer not in facts for _, answer, facts in examples(PAIRS, 2, 0.0, seed=0))


def test_the_same_seed_gives_the_same_examples_and_the_place_of_the_pair_varies():
    assert examples(PAIRS, 2, 0.5, seed=3) == examples(PAIRS, 2, 0.5, seed=3)
    places = {facts.index(a) for _, a, facts in examples(PAIRS * 4, 2, 0.0, seed=1) if len(facts) == 3}
    assert len(places) > 1
