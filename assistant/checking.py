"""Is an answer supported by a Q&A pair? The key facts of the pair, compared with the answer.

A farmer acts on the answer, so "checked" must mean the answer says what the pair says, not only
that a pair was retrieved. The 270M model drifts in ways a similarity score cannot see: the right
pair in its prompt and "Phosphorus" where the pair says nitrogen; the right genus with a wrong
species; a dose with one digit changed. So the check compares facts, not vectors:

- numbers: every number of the pair's answer is in the answer, and the answer states no number
  that neither the pair nor the question states ("3 to 5 cm" vs "5 to 8 cm" fails);
- key facts: every keyword the trainer gave the pair (the report card's own matching);
- names: every capitalised name and code of the pair's answer (a nutrient, a pest's Latin name,
  a variety, a place, "C4") is in the answer, except those the questions already name (the
  subject of "How is maize pollinated?" need not be repeated);
- negation: the answer and the pair agree on "not / never / no / avoid";
- direction: the answer does not raise what the pair lowers ("raises the pH" vs "lowers it");
- substance: the answer carries at least half of what the pair's answer adds to the questions
  (its content words that neither question has: "violet" in "The Zorblat fruit is violet"), or
  says nothing beyond the pair and the question (a short "Nitrogen." for "Nitrogen deficiency
  yellows the lower leaves" drops detail, it does not contradict). "The Zorblat fruit is
  orange" shares most words with the pair and none of its fact: not supported.

Words are compared by a crude stem (plural and verb endings off), case-folded. Uploaded text is
only ever compared here, never followed: an answer that says "ignore the Q&A" is a string.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-zÀ-ÿ]+")
_CODE = re.compile(r"\b[A-Za-z]+\d[\w-]*\b")  # C4, NPK17, H2O: a letter run then a digit
NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
                "thirty": "30", "fifty": "50", "hundred": "100", "half": "0.5", "dozen": "12"}
NEGATIONS = {"not", "never", "no", "avoid", "don't", "doesn't", "cannot", "can't", "nor", "without"}
STOPWORDS = set("""a an the and or but if of to in on at by for with from into onto over under about as is are was
were be been being it its this that these those there their they them he she his her you your we our i my me
do does did done can could should would will shall may might must have has had having than then so such very
also more most less least much many any some each every all both either neither other another same what which
who whom whose when where why how yes only just use used using make makes made well good best""".split())
NOT_NAMES = STOPWORDS | {"answer", "question", "fact"}


@dataclass(frozen=True)
class Verdict:
    supported: bool
    reason: str  # for a trainer or a log: which fact failed, or why it holds


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def numbers_in(text: str) -> set[str]:
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    found |= {NUMBER_WORDS[w.lower()] for w in _WORD.findall(text) if w.lower() in NUMBER_WORDS}
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in found}


def names_in(text: str) -> set[str]:
    """Stems of capitalised words (anywhere: a sentence may begin with the key nutrient), and codes."""
    words = {_stem(w) for w in _WORD.findall(text) if w[0].isupper() and w.lower() not in NOT_NAMES and len(w) > 1}
    return words | {c.lower() for c in _CODE.findall(text)}


def content_in(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text) if len(w) >= 3 and w.lower() not in STOPWORDS
            and w.lower() not in NUMBER_WORDS}


def subjects_named(text: str) -> list[str]:
    """The crops and animals a text mentions (lower-case words a farmer's question is about), in order."""
    return [SAME.get(w, w) for w in (_stem(w) for w in _WORD.findall(text)) if w in subject_stems()]


def subjects_in(text: str) -> set[str]:
    return set(subjects_named(text))


# What a farmer's question is about, when it is not capitalised: a pair about potatoes does not
# answer "how deep for beans?" however alike the wording (grounding.names covers capitalised names).
SUBJECTS = set("""maize corn bean soybean soya cowpea pea chickpea lentil groundnut peanut rice wheat barley oat sorghum
millet teff cassava potato yam taro banana plantain coffee tea cocoa cotton sugarcane tomato onion cabbage kale
carrot pepper chili chilli pumpkin squash cucumber melon watermelon mango avocado citrus orange lemon apple grape
sunflower sesame tobacco alfalfa clover rye vetch goat sheep cow cattle calf pig chicken broiler hen duck turkey
rabbit fish tilapia bee""".split())


@functools.cache
def subject_stems() -> frozenset[str]:
    return frozenset(_stem(w) for w in SUBJECTS)  # SAME's synonyms are in SUBJECTS too


SAME = {"corn": "maize", "soya": "soybean", "peanut": "groundnut", "chilli": "chili", "cattle": "cow",
        "calf": "cow", "hen": "chicken", "broiler": "chicken"}


# Directions of change: "what raises the pH of an acid soil?" is not answered by the pair about
# lowering it, though the embedder puts the two at 0.83 (they share every other word).
_UP = re.compile(r"\b(?:rais(?:e|es|ed|ing)|increas(?:e|es|ed|ing)|boost(?:s|ed|ing)?)\b", re.I)
_DOWN = re.compile(r"\b(?:lower(?:s|ed|ing)?|reduc(?:e|es|ed|ing)|decreas(?:e|es|ed|ing)|cut(?:s|ting)? down)\b",
                   re.I)


def direction(text: str) -> str | None:
    """"up" or "down" when a text speaks of a change one way only, else None."""
    up, down = bool(_UP.search(text)), bool(_DOWN.search(text))
    return "up" if up and not down else "down" if down and not up else None


def opposed(text: str, other: str) -> bool:
    """Whether two texts speak of changes in opposite directions (raise vs lower)."""
    ours, theirs = direction(text), direction(other)
    return ours is not None and theirs is not None and ours != theirs


def negated(text: str) -> bool:
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", text)}
    return bool(words & NEGATIONS) or "n't" in text.lower()


def supports(answer: str, pair_answer: str, question: str = "", pair_question: str = "",
             keywords: tuple[str, ...] = ()) -> Verdict:
    """Whether `answer` says what `pair_answer` says (see the module docstring for the rules).
    `question` (the user's) and `pair_question` say what is given, not claimed; `keywords`, the
    pair's key facts as its trainer wrote them, must all be there (matched as the report card does)."""
    from assistant.scoring import Probe, is_correct

    if not answer.strip():
        return Verdict(False, "the answer is empty")
    if keywords and not is_correct(answer, Probe(pair_question, pair_answer, list(keywords))):
        return Verdict(False, f"misses a key fact of the Q&A ({', '.join(keywords)})")
    said, known = numbers_in(answer), numbers_in(pair_answer)
    if known - said:
        return Verdict(False, f"drops the number(s) {', '.join(sorted(known - said))}")
    extra = said - known - numbers_in(question)
    if extra:
        return Verdict(False, f"states number(s) the Q&A does not: {', '.join(sorted(extra))}")
    answer_words = content_in(answer) | names_in(answer)
    given = content_in(question) | names_in(question) | content_in(pair_question) | names_in(pair_question)
    missing = names_in(pair_answer) - answer_words - given
    if missing:
        return Verdict(False, f"does not name {', '.join(sorted(missing))}")
    # A name or a crop the pair never mentions is a claim it cannot back: "Tea rust is caused by
    # Hemileia vastatrix" shown with the coffee pair, "Wheat is planted 10 cm deep" with the potato one.
    known = names_in(pair_answer) | content_in(pair_answer) | given
    invented = (names_in(answer) - known) | (subjects_in(answer) - subjects_in(f"{pair_answer} {question} {pair_question}"))
    if invented:
        return Verdict(False, f"names what the Q&A does not: {', '.join(sorted(invented)[:4])}")
    if negated(answer) != negated(pair_answer):
        return Verdict(False, "negation differs from the Q&A")
    if opposed(answer, pair_answer):
        return Verdict(False, f"says {direction(answer)} where the Q&A says {direction(pair_answer)}")
    pair_words = content_in(pair_answer)
    new = pair_words - given  # what the pair adds to the question: the fact itself ("violet")
    if not new:
        return Verdict(True, "the Q&A answer adds no content words beyond its numbers and names, all present")
    share = len(new & answer_words) / len(new)
    if share >= 0.5:
        return Verdict(True, f"carries {share:.0%} of what the Q&A answer adds to the question")
    beyond = content_in(answer) - pair_words - given
    if not beyond:
        return Verdict(True, "says nothing beyond the Q&A answer and the question")
    return Verdict(False, f"carries {share:.0%} of what the Q&A answer adds, and adds {', '.join(sorted(beyond)[:4])}")
