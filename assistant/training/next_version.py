"""The next version of an adapter: the serving version's Q&A plus the newly answered pairs, trained
with the same recipe and settings, then gated (assistant.training.gate) and promoted only if it passes.

    result = next_version(assistant, "agriculture", pairs, by="amina")
    result.adapter.version, result.promoted, result.decision["reasons"]

`pairs` are [{"question", "answer", "item_ids", "answered_by"}] (the trainers' queue gives them:
assistant.questions.answered_pairs). A pair whose question is already in the file (the same
question up to case and final punctuation) replaces that row: the trainer edited it. The new
version is published as a candidate (it never serves before the gate says so) with `lineage.json`
beside it: which version it was trained from, what was added and replaced, by whom, from which
queue items. The app runs this in its job worker (`assistant adapters next NAME`), never in itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields

from assistant.data.limits import MAX_CELL_CHARS
from assistant.data.report import question_key
from assistant.training.base_answers import BaseAnswers
from assistant.training.config import TrainConfig
from assistant.training.evaluate import Probe, load_probes
from assistant.training.gate import TOLERANCE, GateSets, describe, run_gate
from assistant.training.progress import Progress


@dataclass
class NextVersionResult:
    adapter: object  # the candidate's registry Adapter
    decision: dict  # the gate's (assistant.training.gate.compare, with both versions' scores)
    promoted: bool
    train: object  # recipe.TrainResult

    def summary(self) -> str:
        return describe(self.decision)


def next_version(assistant, name: str, new_pairs: list[dict], by: str = "",
                 on_progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
                 tolerance: float = TOLERANCE, mark_trained: Callable | None = None) -> NextVersionResult:
    """Train `name` v(N+1) from the serving v(N) and `new_pairs`, gate it, promote it if it passes.
    `mark_trained(item_ids, version)` is called once it serves (the queue's items are then done).
    Bad input (no pairs, an empty answer, an adapter without stored Q&A) is a ValueError, before
    anything is loaded or trained."""
    from assistant.data import read_qa_bytes
    from assistant.grounding.index import dataset_path
    from assistant.serving import record_decision
    from assistant.training.recipe import train

    emit = on_progress or (lambda p: None)
    registry = assistant.registry
    current = registry.get(name)
    pairs = clean_pairs(new_pairs)
    stored = dataset_path(current)
    if stored is None:
        raise ValueError(f"{name} v{current.version} has no stored Q&A file to build on; train it from a file first")
    old = read_qa_bytes(stored.read_bytes(), stored.name)
    rows, lineage, replaced = merge(old, pairs, current, by)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    report = read_qa_bytes(data, "dataset.jsonl")
    _check_new_rows_kept(report, rows, pairs)
    cfg = config_of(current)

    result = train(cfg, assistant.base, registry, report, name, evaluator=assistant.engine, on_progress=emit,
                   cancel=cancel, data_bytes=data, description=current.manifest.get("description", ""),
                   answer_policy=current.answer_policy, lineage=lineage)
    candidate = result.adapter
    sets = GateSets(heldout=[Probe(r.question, r.answer, r.keywords) for r in old.test
                             if question_key(r.question) not in replaced],
                    probes=load_probes(), new=[Probe(p["question"], p["answer"]) for p in pairs])

    def note(message: str) -> None:
        emit(Progress("gate", message=f"gate: {message}"))

    try:
        decision = run_gate(assistant.engine, current, candidate, sets, tolerance, cancel, note,
                            BaseAnswers.for_base(assistant.base))
    finally:
        assistant.engine.unload_adapter(candidate.key)
        assistant.engine.unload_adapter(current.key)
    record_decision(registry, name, candidate.version, decision, decision["passed"], by or "gate")
    if decision["passed"] and mark_trained is not None:
        mark_trained(sorted({i for p in pairs for i in p["item_ids"]}), candidate.version)
    emit(Progress("done", message=describe(decision)))
    return NextVersionResult(registry.get_version(name, candidate.version), decision, decision["passed"], result)


def clean_pairs(new_pairs) -> list[dict]:
    """The pairs checked one by one (a clear error naming the first bad one); a question answered
    twice keeps its last answer."""
    if not isinstance(new_pairs, list) or not new_pairs:
        raise ValueError("no newly answered questions: answer some in “Questions to answer” first")
    kept: dict[str, dict] = {}
    for n, pair in enumerate(new_pairs, 1):
        if not isinstance(pair, dict):
            raise ValueError(f"answered pair {n} is not an object with question and answer")
        texts = {}
        for key in ("question", "answer"):
            value = pair.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"answered pair {n} has no {key}")
            if len(value) > MAX_CELL_CHARS:
                raise ValueError(f"answered pair {n}: the {key} is {len(value)} characters (at most {MAX_CELL_CHARS})")
            texts[key] = value.strip()
        ids = pair.get("item_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"answered pair {n}: item_ids must be a list of numbers")
        key = question_key(texts["question"])
        earlier = kept.pop(key, {"item_ids": []})
        kept[key] = {**texts, "item_ids": sorted(set(earlier["item_ids"]) | set(ids)),
                     "answered_by": str(pair.get("answered_by") or "")[:100]}
    return list(kept.values())


def merge(old, pairs: list[dict], current, by: str) -> tuple[list[dict], dict, set[str]]:
    """(rows of the new file, its lineage, the question keys the new pairs replaced)."""
    new_by_key = {question_key(p["question"]): p for p in pairs}
    rows, replaced_rows, replaced = [], [], set()
    for record in old.records:
        key = question_key(record.question)
        if key in new_by_key:
            replaced.add(key)
            replaced_rows.append({"question": record.question, "old_answer": record.answer, "split": record.split,
                                  **new_by_key[key]})
            continue
        row = {"question": record.question, "answer": record.answer, "split": record.split}
        if record.keywords:
            row["keywords"] = record.keywords
        rows.append(row)
    rows += [{"question": p["question"], "answer": p["answer"], "split": "train"} for p in pairs]
    lineage = {"trained_from": {"name": current.name, "version": current.version,
                                "dataset_sha256": (current.manifest.get("dataset") or {}).get("sha256")},
               "trained_by": by, "kept_rows": len(rows) - len(pairs),
               "added": [p for p in pairs if question_key(p["question"]) not in replaced],
               "replaced": replaced_rows}
    return rows, lineage, replaced


def config_of(adapter) -> TrainConfig:
    """The training settings the serving version was trained with, to train the next one alike."""
    saved = adapter.manifest.get("training") or {}
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    if "preset" not in values:
        raise ValueError(f"{adapter.name} v{adapter.version} records no training settings to train its next "
                         "version with; train it from a file instead")
    return TrainConfig(**values)


def _check_new_rows_kept(report, rows: list[dict], pairs: list[dict]) -> None:
    """A new answer the data checks reject (a formula, a control character) is refused by name."""
    first_new = len(rows) - len(pairs) + 1
    for rejection in report.rejected:
        if rejection.row >= first_new:
            question = pairs[rejection.row - first_new]["question"]
            raise ValueError(f"the answer to “{question[:80]}” cannot be trained: {rejection.reason}")
    blocking = report.blocking_problems(allow_conflicts=True)
    if blocking:
        raise ValueError("cannot train the next version: " + "; ".join(blocking))
