"""The report card: does the adapter know its facts, and did the base keep what it knew?

Greedy answers (reproducible) are scored three ways, before (bare base) and after (with adapter):
- recall: training questions whose answer contains the key fact;
- held-out recall: the same for held-out paraphrases (the file's test rows);
- retention: of the general probes the bare base answers correctly, the share still answered
  correctly with the adapter (datasets/probes/general.jsonl).

The key fact is the row's `keywords` (every keyword must appear). Without keywords, the rule is:
the normalised reference answer appears in the answer, or at least 70% of its content words
(longer than three letters, not stop words) do. Normalising lowercases, folds accents, and turns
punctuation into spaces, so "Crystalburg." matches "crystalburg". Number words up to twenty
count as their numerals ("six" and "6" are the same key fact), and a numeric keyword must stand
alone ("6" is not found in "16").
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.answer import stream_text
from assistant.engines import GenerationSettings
from assistant.paths import DATASETS

PROBES = DATASETS / "probes" / "general.jsonl"
EVAL_SETTINGS = GenerationSettings(max_tokens=64, temperature=0.0)
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


def load_probes(path: Path = PROBES) -> list[Probe]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Probe(r["question"], r.get("answer", ""), list(r.get("keywords") or [])) for r in rows]


Answerer = Callable[[str], str]  # question -> greedy answer text


def score(answer_fn: Answerer, probes: list[Probe]) -> tuple[float, list[dict]]:
    """(share correct, per-question details) for one answerer over a probe list."""
    details = []
    for probe in probes:
        answer = answer_fn(probe.question)
        details.append({"question": probe.question, "answer": answer, "correct": is_correct(answer, probe)})
    share = sum(d["correct"] for d in details) / len(details) if details else 0.0
    return share, details


def engine_answerer(engine, adapter) -> Answerer:
    def answer(question: str) -> str:
        return "".join(stream_text(engine, [{"role": "user", "content": question}], adapter, EVAL_SETTINGS)).strip()

    return answer


def report_card(engine, adapter, train: list[Probe], heldout: list[Probe], probes: list[Probe],
                before: dict | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Before/after scores; `before` (the bare base's results) can be passed in when already known."""
    def measure(target) -> dict:
        answer = engine_answerer(engine, target)
        results = {}
        for key, items in (("recall", train), ("heldout_recall", heldout), ("retention_raw", probes)):
            if progress:
                progress(f"{'after' if target else 'before'}: {key.replace('_raw', '')}")
            if items:
                results[key], results[f"{key}_details"] = score(answer, items)
        return results

    before = before or measure(None)
    after = measure(adapter)
    card = {"before": _summary(before), "after": _summary(after), "counts": {
        "train": len(train), "heldout": len(heldout), "probes": len(probes)}}
    known = [i for i, d in enumerate(before.get("retention_raw_details", [])) if d["correct"]]
    if known:
        kept = sum(after["retention_raw_details"][i]["correct"] for i in known)
        card["after"]["retention"] = kept / len(known)
        card["before"]["retention"] = 1.0
        card["counts"]["probes_known_by_base"] = len(known)
        card["forgotten"] = [after["retention_raw_details"][i] for i in known
                             if not after["retention_raw_details"][i]["correct"]][:10]
    card["misses"] = [d for d in after.get("heldout_recall_details", []) if not d["correct"]][:10]
    card["_before_raw"] = before
    return card


def _summary(results: dict) -> dict:
    return {k: v for k, v in results.items() if isinstance(v, float) and k != "retention_raw"}


# (key, label) of each score, in the order every view of a report card shows them.
CARD_ROWS = (("recall", "Recall (training questions)"), ("heldout_recall", "Held-out recall (paraphrases)"),
             ("retention", "Retention (general knowledge kept)"))


def format_card(card: dict) -> str:
    lines = [f"{'':36} {'before':>8} {'after':>8}"]
    for key, label in CARD_ROWS:
        if key in card["after"]:
            b = card["before"].get(key)
            lines.append(f"{label.lower():36} {b if b is None else f'{b:.0%}':>8} {card['after'][key]:>8.0%}")
    for miss in card.get("misses", [])[:3]:
        lines.append(f"  missed: {miss['question']} -> {miss['answer'][:80]}")
    for lost in card.get("forgotten", [])[:3]:
        lines.append(f"  forgot: {lost['question']} -> {lost['answer'][:80]}")
    return "\n".join(lines)
