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
RUST = ("What is the main way to control wheat rusts?",
        "The main control for wheat rusts is growing resistant varieties, supplemented by fungicides when needed.")
NO_TILL = ("Which herbicide do no-till systems rely on heavily?",
           "No-till systems rely heavily on glyphosate for weed control.")
CASSAVA_LIMIT = ("How can farmers limit cassava mosaic disease?",
                 "Farmers limit cassava mosaic disease by planting resistant varieties and removing infected plants early.")
CASSAVA_VECTOR = ("Which insect spreads cassava mosaic disease?",
                  "Cassava mosaic disease is spread by the whitefly Bemisia tabaci and by infected stem cuttings.")
STRIGA = ("What is Striga?", "Striga, or witchweed, is a parasitic plant that attaches to the roots of cereals such "
          "as maize and sorghum and steals their water and nutrients.")
BEETLE = ("What is the Colorado potato beetle?", "The Colorado potato beetle is a striped beetle whose larvae strip "
          "potato foliage and readily develop insecticide resistance.")
ANTS = ("Why do ants often tend aphid colonies?", "Ants protect aphids from predators in exchange for honeydew.")
SOLARISATION = ("What is soil solarisation?", "Soil solarisation covers moist soil with clear plastic so the heat kills "
                "pathogens, pests and weed seeds.")
WILT_CAUSE = ("What causes bacterial wilt of tomatoes and potatoes?",
              "Bacterial wilt is caused by the soil-borne bacterium Ralstonia solanacearum.")
WILT_TEST = ("How can bacterial wilt be confirmed in the field?", "Suspending a cut stem in clear water shows milky "
             "streams of bacterial ooze flowing out when the plant has bacterial wilt.")
BLIGHT_LOOKS = ("What do late blight symptoms look like on potato leaves?", "Late blight causes dark, water-soaked "
                "lesions on leaves, often with white fuzzy growth on the underside in humid conditions.")
BLIGHT_WEATHER = ("What weather favours late blight outbreaks?",
                  "Late blight spreads fastest in cool, wet, humid weather with long periods of leaf wetness.")
LEAF_CURL = ("How can growers keep tomato seedlings free of leaf curl virus?",
             "Growers raise tomato seedlings under insect-proof netting and control whiteflies to keep the virus out.")
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
    # naming the kind is not naming one; a definition is not what to do against it
    ("which fungicide is good for stem rust on wheat", RUST, False),  # "fungicides when needed"
    ("which cassava variety resists mosaic disease", CASSAVA_LIMIT, False),  # "resistant varieties"
    ("which cassava variety resists mosaic disease", CASSAVA_VECTOR, False),  # Bemisia is no variety
    ("how do i get rid of striga in my maize field", STRIGA, False),
    ("how to kill colorado beetle eating my potato leaves", BEETLE, False),  # "insecticide resistance"
    ("ants keep guarding the aphids on my beans, how to stop the ants", ANTS, False),  # ants protect aphids
    ("what is the name of fungicide to spray on irish potato for late blight", BLIGHT, False),
    ("which banana type can survive tr4, my cavendish are dying", TR4, False),  # the question names it
    ("how do i know if my tomato has bacterial wilt", WILT_CAUSE, False),  # a cause, no sign ("wilt" is asked)
    ("what weather makes blight spread on potatoes", BLIGHT_LOOKS, False),  # "in humid conditions", in passing
    # the same asks, answered
    ("which herbicide do no-till farmers spray", NO_TILL, True),  # the pair asks for it
    ("how can i protect my tomato seedlings from leaf curl", LEAF_CURL, True),
    ("how to kill soil diseases and weed seeds in my nursery bed with sun heat", SOLARISATION, True),
    ("how do i know if my tomato has bacterial wilt", WILT_TEST, True),
    ("what weather makes blight spread on potatoes", BLIGHT_WEATHER, True),
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
    ("how do i get rid of striga", {"control"}),
    ("how can we stop fall armyworm eating the maize", {"control"}),
    ("what kills aphids on kale", {"control"}),
    ("how do farmers stop late blight?", {"control"}),
    ("what do farmers grow to stop soil erosion", set()),  # asks what, not how
    ("which wheat seed variety stands ug99", {"kind:variety"}),
    ("how do i know if my tomato has bacterial wilt", {"sign"}),
    ("what weather makes blight spread on potatoes", {"weather"}),
    ("what is the name of fungicide for late blight", {"kind:fungicide"}),
    ("which banana type survives tr4", {"kind:variety"}),
    ("which nematicide for root knot", {"kind:nematicide"}),
    ("what type of pathogen causes late blight", set()),  # a pathogen is no crop's variety
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


def test_near_misses_are_not_covered_by_the_agriculture_qa(agriculture):
    """datasets/trust/near_miss.jsonl: the subject of a pair, another ask. Before the asks were
    compared, 9 of the 40 written with the rules and 16 of the 40 written blind were covered, each shown
    as a checked answer from a pair that does not answer it; then 3 (a kind named only in general,
    "supplemented by fungicides when needed"; a "how do I get rid of" ask beside a definition); now none,
    nor any of the 30 of round 2 (of which the rules as they stood covered 7)."""
    from assistant.trust import cover

    knowledge, adapter = agriculture
    covered = {row["question"]: cover(knowledge, adapter, row["question"]).pair for row in _trust_set("near_miss.jsonl")}
    assert {q: m.question for q, m in covered.items() if m is not None} == {}


@pytest.mark.parametrize("name, floor", [("in_scope.jsonl", 54), ("ask_paraphrases.jsonl", 28), ("held-out", 51),
                                         ("kind_control_paraphrases.jsonl", 5)])
def test_paraphrases_keep_their_coverage(agriculture, name, floor):
    """Farmer paraphrases (62; 40 asking when / how long / how far apart / how much, written blind; 30
    asking which kind or how to stop something, written blind later) and the held-out rows are covered
    by their own pair as often as before the asks were compared."""
    from assistant.trust import cover
    from benchmarks.trust_sets import heldout_set

    knowledge, adapter = agriculture
    rows = heldout_set() if name == "held-out" else _trust_set(name)
    right = sum((m := cover(knowledge, adapter, r["question"]).pair) is not None and m.question == r["pair_question"]
                for r in rows)
    assert right >= floor


# The one paraphrase still covered by another pair: "how does X kill weevils" asks how a remedy
# works, which no ask reads, and the pair on stored-grain pests names weevils and maize.
STILL_WRONG = {"how does an airtight sack kill weevils in my maize": "Which insects are major pests of stored maize grain?"}


@pytest.mark.parametrize("name", ["in_scope.jsonl", "ask_paraphrases.jsonl", "kind_control_paraphrases.jsonl",
                                  "held-out"])
def test_a_paraphrase_is_covered_by_its_own_pair_or_by_none(agriculture, name):
    """Covered by another pair, an answer is shown as checked against a pair that answers something
    else. Before the kind, control, sign and weather asks were read, five were: "how can i protect my
    tomatoes from bacterial wilt" and "how do i know if my tomato has bacterial wilt" by "What causes
    bacterial wilt…?", "what weather makes blight spread" by the pair on its symptoms, and two more."""
    from assistant.trust import cover
    from benchmarks.trust_sets import heldout_set

    knowledge, adapter = agriculture
    rows = heldout_set() if name == "held-out" else _trust_set(name)
    wrong = {r["question"]: m.question for r in rows
             if (m := cover(knowledge, adapter, r["question"]).pair) is not None and m.question != r["pair_question"]}
    assert wrong == {q: p for q, p in STILL_WRONG.items() if q in {r["question"] for r in rows}}
