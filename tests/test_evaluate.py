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
