"""The gate: a candidate version serves only if nothing regresses against the version serving now.

Both versions are measured here, in the same run and on the same sets (the report cards stored in
their manifests were each measured on its own dataset, so they cannot be compared):
- held-out recall: the serving version's held-out rows (its file's test rows), less those the new
  pairs replaced (they are trained now, not held out);
- retention: of the general probes the bare base answers correctly, the share still answered;
- new recall: the newly answered questions, with the trainer's answers.
Answers are greedy (reproducible), scored as the report card scores them (evaluate.is_correct).

The rule (`compare`): the candidate passes when no score falls by more than TOLERANCE (5
percentage points), or by more than one question where a set has fewer than 20 (one question is
more than 5 points of it). Why a tolerance at all: greedy decoding makes each answer
deterministic, but a new version is a fresh LoRA trained on a changed dataset, and answers that
were borderline move either way; a drop of a question or two is that, a larger one is the new data
or the training hurting what worked. New recall has no tolerance: the candidate was trained on those
questions, so answering fewer of them than the serving version does is a failure whatever the size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from assistant.training.evaluate import EVAL_SETTINGS, Probe, engine_answerer, is_correct

TOLERANCE = 0.05
SMALL_SET = 20  # below this many questions, one question's worth is the tolerance
METRICS = (("heldout_recall", "Held-out recall (paraphrases)"), ("retention", "Retention (general knowledge kept)"),
           ("new_recall", "Newly answered questions"))


@dataclass
class GateSets:
    """The questions both versions answer."""

    heldout: list[Probe] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)  # general knowledge (evaluate.load_probes)
    new: list[Probe] = field(default_factory=list)


def measure(engine, adapter, sets: GateSets, known: list[bool] | None, cancel=None,
            progress: Callable[[str], None] | None = None) -> dict:
    """One version's scores on the gate's sets: {metric: share, "counts": ..., "details": ...}.
    `known`: which probes the bare base answers correctly (retention counts only those)."""
    answer = engine_answerer(engine, adapter)
    card: dict = {"counts": {}, "details": {}}
    for key, items in (("heldout_recall", sets.heldout), ("new_recall", sets.new)):
        if items:
            if progress:
                progress(f"{key.replace('_', ' ')} of v{adapter.version}")
            card[key], card["details"][key] = _score(answer, items, cancel)
            card["counts"][key] = len(items)
    probes = [p for p, k in zip(sets.probes, known or [], strict=False) if k]
    if probes:
        if progress:
            progress(f"retention of v{adapter.version}")
        card["retention"], card["details"]["retention"] = _score(answer, probes, cancel)
        card["counts"]["retention"] = len(probes)
    return card


def base_knows(engine, probes: list[Probe], cancel=None, base_answers=None) -> list[bool]:
    """Which general probes the bare base answers correctly (its answers kept in `base_answers`,
    training.base_answers.BaseAnswers, when given: the report card asked them already)."""
    answer = engine_answerer(engine, None)
    if base_answers is not None:
        answer = base_answers.answerer(engine, EVAL_SETTINGS, answer)
    known = [_check(cancel) or is_correct(answer(p.question), p) for p in probes]
    if base_answers is not None:
        base_answers.save()
    return known


def compare(serving: dict, candidate: dict, tolerance: float = TOLERANCE) -> dict:
    """The decision: {"passed", "reasons", "rows", "tolerance"}; a metric measured on an empty set
    (no held-out rows, a base that knows no probe) is not compared."""
    rows, reasons = [], []
    for key, label in METRICS:
        before, after = serving.get(key), candidate.get(key)
        if before is None or after is None:
            continue
        count = (candidate.get("counts") or {}).get(key) or 0
        allowed = 0.0 if key == "new_recall" else max(tolerance, 1 / count if 0 < count < SMALL_SET else 0.0)
        ok = after >= before - allowed - 1e-9
        rows.append({"metric": key, "label": label, "serving": before, "candidate": after, "allowed_drop": allowed,
                     "questions": count, "ok": ok})
        if not ok:
            reasons.append(f"{label.lower()} fell from {before:.0%} to {after:.0%} (at most {allowed:.0%} may be lost)")
    return {"passed": not reasons, "reasons": reasons, "rows": rows, "tolerance": tolerance,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run_gate(engine, serving, candidate, sets: GateSets, tolerance: float = TOLERANCE, cancel=None,
             progress: Callable[[str], None] | None = None, base_answers=None) -> dict:
    """Measure both versions on the same sets and decide; the decision carries both scores."""
    note = progress or (lambda message: None)
    note("which general questions the bare base answers")
    known = base_knows(engine, sets.probes, cancel, base_answers)
    before = measure(engine, serving, sets, known, cancel, progress)
    after = measure(engine, candidate, sets, known, cancel, progress)
    decision = compare(before, after, tolerance)
    decision.update(serving_version=serving.version, candidate_version=candidate.version,
                    misses=[d for d in after["details"].get("new_recall", []) if not d["correct"]][:10])
    return decision


def describe(decision: dict) -> str:
    """One line: promoted, or kept as a candidate and why."""
    version, old = decision.get("candidate_version"), decision.get("serving_version")
    if decision.get("passed"):
        return f"v{version} passed the gate against v{old} and serves"
    return f"v{version} stays a candidate (v{old} still serves): " + "; ".join(decision.get("reasons") or [])


def _score(answer, items: list[Probe], cancel) -> tuple[float, list[dict]]:
    details = []
    for probe in items:
        _check(cancel)
        got = answer(probe.question)
        details.append({"question": probe.question, "answer": got, "correct": is_correct(got, probe)})
    return sum(d["correct"] for d in details) / len(details), details


def _check(cancel) -> bool:
    if cancel is not None:
        from assistant.training.progress import stop_if_cancelled

        stop_if_cancelled(cancel)
    return False
