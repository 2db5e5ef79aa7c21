"""What a question asks for, and whether a pair says it (assistant.asks): a pair about the same crop
that answers another question must not be shown as the checked answer."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from assistant.asks import asks_of, unanswered_asks

SPACING = ("What is a common row spacing for maize?",
           "Maize is commonly planted in rows about 75 cm apart, with plants 25 to 30 cm apart within the row.")
DEPTH = ("How deep are seed potatoes usually planted?",
         "Seed potatoes are usually planted about 10 cm deep and then earthed up as the plants grow.")
BLIGHT = ("What pathogen causes late blight of potato and tomato?",
          "Late blight is caused by Phytophthora infestans, a water mould.")
ONION = ("What triggers bulb formation in onions?",
         "Onion bulbing is triggered mainly by day length, so varieties are classed as short-day or long-day.")
RIPEN = ("How long after transplanting do most tomato varieties start to ripen?",
         "Most tomato varieties begin ripening about 60 to 85 days after transplanting.")
TR4 = ("What is Tropical Race 4 in bananas?",
       "Tropical Race 4 is a strain of Fusarium wilt that kills Cavendish bananas.")
TOMATO_PH = ("What soil pH do tomatoes prefer?", "Tomatoes grow best in slightly acidic soil, with a pH of around 6.2 to 6.8.")
SOIL_TEMP = ("What is the minimum soil temperature for maize seed to germinate reliably?",
             "Maize seed needs a soil temperature of at least about 10°C to germinate reliably.")
TURN_WHY = ("Why should a compost pile be turned?", "Turning a compost pile supplies oxygen to the aerobic microbes.")
TURN_WEEKLY = ("How is a compost pile looked after?", "Turn the pile every week or two so it heats evenly.")
LIME = ("How is acidic soil usually corrected?", "Acidic soil is usually corrected by applying agricultural lime.")
BEANS = ("How warm should the soil be before sowing common beans?",
         "Common beans are best sown when the soil is at least about 16°C (60°F).")


@pytest.mark.parametrize("question, pair, answers", [
    # the asks the shipped agriculture Q&A was seen to answer with another pair, marked checked
    ("when should i plant maize", SPACING, False),
    ("how far apart should seed potatoes be planted", DEPTH, False),
    ("which fungicide controls late blight on potatoes", BLIGHT, False),
    ("how long does it take onion bulbs to mature", ONION, False),  # "day length" is no span of time
    ("what is the best soil ph for maize", SOIL_TEMP, False),  # a number, but not a pH
    ("how often should a compost pile be turned", TURN_WHY, False),
    ("how much lime should i apply per hectare to acid soil", LIME, False),
    # the same asks, answered
    ("what spacing between maize rows?", SPACING, True),
    ("at what depth do seed potatoes go in", DEPTH, True),
    ("when do tomatoes start ripening after transplanting", RIPEN, True),
    ("how many days until my tomatoes ripen", RIPEN, True),
    ("which variety of banana is killed by Tropical Race 4?", TR4, True),  # named, not called a variety
    ("what is the best soil ph for tomatoes", TOMATO_PH, True),
    ("how often should a compost pile be turned", TURN_WEEKLY, True),
    ("how warm must the soil be for beans", BEANS, True),
    ("when can i sow beans", BEANS, True),  # "best sown when the soil is at least 16°C"
    # no specific ask: left to similarity and names
    ("what causes late blight", BLIGHT, True),
    ("What do roots lack when a field is waterlogged?", ("Why does waterlogging harm crop roots?",
                                                          "Waterlogging fills soil pores with water, so roots lack oxygen."), True),
])
def test_a_pair_answers_a_question_only_if_it_says_what_is_asked(question, pair, answers):
    assert (not unanswered_asks(question, *pair)) is answers


@pytest.mark.parametrize("question, asks", [
    ("when should i plant maize", {"time"}),
    ("my maize, when should i plant it", {"time"}),
    ("What do roots lack when a field is waterlogged?", set()),  # "when" as a conjunction
    ("Which device do farmers use to read soil water tension when deciding when to irrigate?", set()),
    ("how many days does maize take to mature", {"duration"}),
    ("how many bags of fertiliser per acre", {"amount"}),
    ("how many times a year can tea be plucked", {"frequency"}),
    ("how deep and how far apart should potatoes be planted", {"depth", "spacing"}),
    ("which pesticide kills fall armyworm", {"kind:pesticide"}),
    ("what fertilizer do tomatoes need", {"kind:fertiliser"}),
    ("What is crop rotation?", set()),
])
def test_the_asks_of_a_question(question, asks):
    assert asks_of(question) == asks


@pytest.fixture(scope="module")
def agriculture():
    """The shipped agriculture adapter's own index (the real embedder over its 230 pairs)."""
    from assistant.grounding.index import Knowledge
    from assistant.paths import SHIPPED_ADAPTERS
    from assistant.registry import Registry

    base_sha256 = json.loads((SHIPPED_ADAPTERS / "agriculture" / "manifest.json").read_text())["base_sha256"]
    registry = Registry(base_sha256, Path(tempfile.mkdtemp(prefix="asks-")), SHIPPED_ADAPTERS)
    knowledge = Knowledge.open(registry.data_dir)
    knowledge.sync(registry)
    yield knowledge, registry.get("agriculture")
    knowledge.close()


def _trust_set(name: str) -> list[dict]:
    from assistant.paths import DATASETS

    text = (DATASETS / "trust" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Near misses the rules still let through (a pair that names the kind only in general, "supplemented
# by fungicides when needed", "resistant varieties"; a "how do I get rid of" ask): README "Checked answers".
KNOWN_GAPS = {
    "which fungicide is good for stem rust on wheat": "What is the main way to control wheat rusts?",
    "which cassava variety resists mosaic disease": "How can farmers limit cassava mosaic disease?",
    "how do i get rid of striga in my maize field": "What is Striga?",
}


def test_near_misses_are_not_covered_by_the_agriculture_qa(agriculture):
    """datasets/trust/near_miss.jsonl: the subject of a pair, another ask. Before the asks were
    compared, 9 of the 40 written with the rules and 16 of the 40 written blind were covered, each shown
    as a checked answer from a pair that does not answer it; only the three known gaps remain."""
    from assistant.trust import cover

    knowledge, adapter = agriculture
    covered = {row["question"]: cover(knowledge, adapter, row["question"]).pair for row in _trust_set("near_miss.jsonl")}
    assert {q: m.question for q, m in covered.items() if m is not None} == KNOWN_GAPS


@pytest.mark.parametrize("name, floor", [("in_scope.jsonl", 53), ("ask_paraphrases.jsonl", 27), ("held-out", 51)])
def test_paraphrases_keep_their_coverage(agriculture, name, floor):
    """Farmer paraphrases (62, and 40 asking when / how long / how far apart / how much, written blind)
    and the held-out rows are covered by their own pair as often as before the asks were compared."""
    from assistant.trust import cover
    from benchmarks.trust_sets import heldout_set

    knowledge, adapter = agriculture
    rows = heldout_set() if name == "held-out" else _trust_set(name)
    right = sum((m := cover(knowledge, adapter, r["question"]).pair) is not None and m.question == r["pair_question"]
                for r in rows)
    assert right >= floor
