"""Is an answer correct? The one rule the report card, the export check, the gate and the answer
checker all score with.

The key fact is the row's `keywords` (every keyword must appear). Without keywords, the rule is:
the normalised reference answer appears in the answer, or at least 70% of its content words
(longer than three letters, not stop words) do. Normalising lowercases, folds accents, and turns
punctuation into spaces, so "Crystalburg." matches "crystalburg". Number words up to twenty
count as their numerals ("six" and "6" are the same key fact), and a numeric keyword must stand
alone ("6" is not found in "16").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

STOP_WORDS = {"the", "and", "that", "with", "from", "this", "have", "they", "their", "into", "about", "which",
              "when", "what", "where", "will", "your", "than", "then", "them", "been", "also", "most", "more"}


@dataclass
class Probe:
    """A question with what a correct answer must contain."""

    question: str
    answer: str
    keywords: list[str] = field(default_factory=list)


NUMBER_WORDS = {word: str(n) for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    words = re.sub(r"[^\w%°.]+|(?<!\d)\.|\.(?!\d)", " ", text).split()
    return " ".join(NUMBER_WORDS.get(w, w) for w in words)


def _contains(got: str, keyword: str) -> bool:
    """keyword in the padded normalised answer; a number must not be part of a longer number."""
    if re.fullmatch(r"[\d.%°]+", keyword):
        return re.search(rf"(?<![\d.]){re.escape(keyword)}(?!\.?\d)", got) is not None
    return keyword in got


def is_correct(answer: str, probe: Probe) -> bool:
    got = f" {normalise(answer)} "
    if probe.keywords:
        return all(_contains(got, normalise(k)) for k in probe.keywords if normalise(k))
    reference = normalise(probe.answer)
    if reference and f" {reference} " in got:
        return True
    words = [w for w in reference.split() if len(w) > 3 and w not in STOP_WORDS]
    return bool(words) and sum(f" {w} " in got for w in words) / len(words) >= 0.7
