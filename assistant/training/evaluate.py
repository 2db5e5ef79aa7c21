"""The report card: does the adapter know its facts, and did the base keep what it knew?

Greedy answers (reproducible) are scored, before (bare base) and after (with adapter):
- recall: training questions whose answer contains the key fact;
- held-out recall: the same for held-out paraphrases (the file's test rows);
- held-out recall with the right pair: each paraphrase asked with the answer of the training pair
  it rewords as a `Fact:`, as a grounded chat shows the pair it found;
- held-out recall with a wrong pair: asked with the answer of another training pair (the one whose
  question shares the most words with it), as when retrieval finds the wrong pair; right only when
  the answer still holds the paraphrase's own key fact;
- retention: of the general probes the bare base answers correctly, the share still answered
  correctly with the adapter (datasets/probes/general.jsonl).

The key fact is scored by assistant.scoring (`is_correct`), as everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from assistant.answer import stream_text
from assistant.engines import GenerationSettings
from assistant.paths import DATASETS
from assistant.scoring import Probe, is_correct

PROBES = DATASETS / "probes" / "general.jsonl"
EVAL_SETTINGS = GenerationSettings(max_tokens=64, temperature=0.0)


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


def engine_answerer(engine, adapter, facts: dict[str, list[str]] | None = None) -> Answerer:
    """Greedy answers; `facts`: question -> the facts its prompt shows (grounding), if any."""
    def answer(question: str) -> str:
        message = {"role": "user", "content": question, "facts": (facts or {}).get(question, [])}
        return "".join(stream_text(engine, [message], adapter, EVAL_SETTINGS)).strip()

    return answer


def report_card(engine, adapter, train: list[Probe], heldout: list[Probe], probes: list[Probe],
                before: dict | None = None, progress: Callable[[str], None] | None = None,
                base_answers=None, heldout_facts: list[tuple[str, str] | None] | None = None) -> dict:
    """Before/after scores; `before` (the bare base's results) can be passed in when already known,
    and `base_answers` (training.base_answers.BaseAnswers) keeps the bare base's answers between cards.
    `heldout_facts`: for each held-out probe, (the right pair's answer, a wrong pair's answer), or
    None where its pair is not known; scored with each shown as the fact."""
    shown = [(p, f) for p, f in zip(heldout, heldout_facts or [], strict=False) if f]
    grounded = {"heldout_recall_right_pair": {p.question: [f[0]] for p, f in shown},
                "heldout_recall_wrong_pair": {p.question: [f[1]] for p, f in shown}}

    def measure(target) -> dict:
        results = {}
        runs = [("recall", train, None), ("heldout_recall", heldout, None), ("retention_raw", probes, None)]
        runs[2:2] = [(key, [p for p, _ in shown], facts) for key, facts in grounded.items()]
        for key, items, facts in runs:
            answer = engine_answerer(engine, target, facts)
            if target is None and base_answers is not None:
                answer = base_answers.answerer(engine, EVAL_SETTINGS, answer, facts)
            if progress:
                progress(f"{'after' if target else 'before'}: {key.replace('_raw', '').replace('_', ' ')}")
            if items:
                results[key], results[f"{key}_details"] = score(answer, items)
        return results

    if before is None:
        before = measure(None)
        if base_answers is not None:
            base_answers.save()
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
    if shown:  # what the adapter got wrong with the right pair in front of it: the trainers' first look
        card["misses_right_pair"] = [d for d in after.get("heldout_recall_right_pair_details", [])
                                     if not d["correct"]][:10]
    card["_before_raw"] = before
    return card


def _summary(results: dict) -> dict:
    return {k: v for k, v in results.items() if isinstance(v, float) and k != "retention_raw"}


# (key, label) of each score, in the order every view of a report card shows them.
CARD_ROWS = (("recall", "Recall (training questions)"), ("heldout_recall", "Held-out recall (paraphrases)"),
             ("heldout_recall_right_pair", "Held-out, right pair shown"),
             ("heldout_recall_wrong_pair", "Held-out, wrong pair shown"),
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
