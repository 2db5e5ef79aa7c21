"""How the trust benchmark judges an answer: correct by its keywords, looping, contradicting the pair
it was checked against, asking back. Its own rules, apart from the product's checker
(assistant/checking.py), so that the benchmark does not grade the product by the product's rules."""

from __future__ import annotations

import re
from collections import Counter

from assistant.scoring import Probe, is_correct, normalise

# --- verdicts ------------------------------------------------------------------------------------

def correct(text: str, keywords: list[str]) -> bool:
    return bool(keywords) and is_correct(text, Probe("", "", list(keywords)))


def max_4gram(text: str) -> int:
    words = re.findall(r"\w+", text.lower())
    grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    return max(grams.values(), default=0)


def is_loop(text: str, hit_limit: bool) -> bool:
    top = max_4gram(text)
    return top >= 3 or (hit_limit and top >= 2)


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_NAME = re.compile(r"[A-Z][\w'’-]{2,}")


def numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(normalise(text)))


def names(answer: str, question: str) -> list[str]:
    """Capitalised words of a pair's answer that do not begin a sentence and that its question does
    not already name ("In Kenya, ... Napier grass" -> Napier)."""
    asked = set(normalise(question).split())
    found = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", answer):
        for i, match in enumerate(_NAME.finditer(sentence)):
            if match.start() == 0 or (i == 0 and not sentence[:match.start()].strip()):
                continue
            word = normalise(re.sub(r"['’]s$", "", match.group(0)))
            if word and not (set(word.split()) <= asked) and word not in found:
                found.append(word)
    return found


def _stem(word: str) -> str:
    for suffix in ("oes", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)]
    return word


# The crops and pests the Q&A is about: an answer that names one its pair does not has swapped subject.
SUBJECTS = frozenset(_stem(w) for w in """maize corn wheat rice potato tomato bean cassava sorghum coffee tea cocoa
groundnut peanut onion banana sugarcane soybean millet teff enset yam taro cotton apple barley cowpea squash canola
olive pepper melon aphid locust armyworm whitefly weevil nematode bollworm""".split())


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in normalise(text).split()}


def contradiction(text: str, source: dict, question: str, keywords_of: dict[str, list[str]],
                  subject_words: frozenset[str] = SUBJECTS, complete: bool = True) -> str:
    """Why a checked answer does not say what its source pair says ("" when it does). complete=False
    asks only that it states nothing the pair does not (no other number, no other subject)."""
    got = f" {normalise(text)} "
    pair_q, pair_a = source.get("question") or "", source.get("answer") or ""
    if complete:
        missing = [k for k in keywords_of.get(pair_q, []) if not correct(text, [k])]
        missing += [n for n in sorted(numbers(pair_a)) if not correct(text, [n])]
        if missing:
            return f"misses {', '.join(missing)}"
        pair_names = names(pair_a, pair_q)
        if pair_names and not any(f" {n} " in got for n in pair_names):
            return f"names none of {', '.join(pair_names)}"
        # a name the pair does not have ("In Vietnam, Arabica coffee is grown" shown with the Colombia pair)
        foreign = [n for n in names(text, "") if not {_stem(w) for w in n.split()} <= _stems(f"{pair_q} {pair_a}")]
        if foreign:
            return f"names {', '.join(foreign)}, which the pair does not"
    extra = numbers(text) - numbers(pair_a) - numbers(pair_q) - numbers(question)
    if extra:
        return f"states {', '.join(sorted(extra))}, which the pair does not"
    # a subject swapped ("Wheat is usually planted about 10 cm deep" shown with the seed-potato pair)
    other = (_stems(text) & subject_words) - _stems(f"{pair_q} {pair_a}") - _stems(question)
    if other:
        return f"is about {', '.join(sorted(other))}, which the pair is not"
    return ""


def asks_back(answer: dict) -> bool:
    text = answer["text"].lower()
    return answer["withheld"] or "did you mean" in text or text.rstrip().endswith("?") or (
        bool(answer["suggestions"]) and not answer["checked"])


def spread(items: list, n: int) -> list:
    """n items spread evenly over the set (every category, both kinds of follow-up), for --limit."""
    return items if len(items) <= n else [items[i * len(items) // n] for i in range(n)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def share(hits: int, total: int) -> float | None:
    return hits / total if total else None
