"""Lint of an uploaded Q&A file: near-duplicate questions within it, and questions close to another
adapter's question with a different answer (which may contradict it).

It uses the knowledge index's embedder and other adapters' pairs (from the index, from the stored
Q&A files of the registry, or from file paths the app hands its checking process). Memory is
linear in rows: similarities are computed LINT_BLOCK rows at a time and only pairs above the
thresholds are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from assistant.grounding.embedder import Embedder, shared_embedder
from assistant.grounding.index import Knowledge, Match, adapter_pairs, dataset_path, pairs_in_file
from assistant.grounding.plan import shorten

NEAR_DUPLICATE = 0.90  # two questions in one file this close ask the same thing
CROSS_CONFLICT = 0.85  # an uploaded question this close to another adapter's may contradict it
SAME_ANSWER = 0.90  # answers this close (or one containing the other) state the same fact
LINT_BLOCK = 1024  # rows compared at a time: a 1,024 x 1,024 block of similarities is 4 MB
MAX_LINT_PAIRS = 1000  # near-duplicate pairs listed at most; past this the file repeats itself wholesale


@dataclass
class LintFinding:
    kind: str  # "near-duplicate", "cross-adapter", or "note" (the list was cut short)
    rows: list[int]
    similarity: float
    message: str


def lint_records(records, knowledge: Knowledge | None = None, registry=None,
                 embedder: Embedder | None = None, datasets: list[tuple[str, int, str]] | None = None) -> list[LintFinding]:
    """Near-duplicate questions within a file, and questions close to another adapter's with a
    different answer. Other adapters' pairs come from the index when given, else from `datasets`
    ((adapter, version, path of its stored Q&A file), what the app passes to its checking
    process), else from the registry's stored datasets.

    Memory is linear in the rows: similarities are computed LINT_BLOCK rows at a time and only
    pairs above the thresholds are kept; answers are embedded only for the rows in such a pair.
    """
    embedder = embedder or (knowledge.embedder if knowledge else shared_embedder())
    records = list(records)
    if not records:
        return []
    vectors = embedder.encode([r.question for r in records])
    tests = [r.split == "test" for r in records]
    # Two held-out rows close to each other are paraphrases of one another, on purpose: not listed.
    pairs, more = _close_pairs(vectors, NEAR_DUPLICATE, lambda i, j: not (tests[i] and tests[j]))
    nearest = _nearest_others(records, vectors, knowledge, registry, embedder, datasets)
    needed = sorted({i for i, j, _ in pairs} | {j for _, j, _ in pairs} | {i for i, m in nearest})
    answer_of = dict(zip(needed, embedder.encode([records[i].answer for i in needed]), strict=True))
    findings: list[LintFinding] = []
    for i, j, s in pairs:
        a, b = records[i], records[j]
        same = _same_answer(a.answer, b.answer, float(answer_of[i] @ answer_of[j]))
        if a.split != b.split and same:
            continue  # a held-out paraphrase of a training question: what held-out rows are for
        what = "with the same answer" if same else "with DIFFERENT answers (possible conflict)"
        findings.append(LintFinding("near-duplicate", [a.row, b.row], round(s, 3),
                                    f"rows {a.row} and {b.row} ask nearly the same question ({s:.2f}) {what}: "
                                    f"'{shorten(a.question)}' / '{shorten(b.question)}'"))
    findings.sort(key=lambda f: (-("DIFFERENT" in f.message), -f.similarity))
    if more:
        findings.append(LintFinding("note", [], 0.0, f"more than {MAX_LINT_PAIRS:,} pairs of nearly the same "
                                    f"question; only the first {MAX_LINT_PAIRS:,} (by row) were checked"))
    return findings + _cross_adapter(records, nearest, answer_of, embedder)


def _close_pairs(vectors, threshold: float, keep) -> tuple[list[tuple[int, int, float]], bool]:
    """(i, j, similarity) for i < j at or above the threshold, by row then column (as a full
    matrix would list them), at most MAX_LINT_PAIRS; and whether there were more."""
    import numpy as np

    found: list[tuple[int, int, float]] = []
    n = len(vectors)
    for top in range(0, n, LINT_BLOCK):
        rows = vectors[top:top + LINT_BLOCK]
        hits = []
        for left in range(top, n, LINT_BLOCK):
            sims = rows @ vectors[left:left + LINT_BLOCK].T
            if left == top:
                sims = np.triu(sims, 1)  # the diagonal block: each pair once, never a row with itself
            i, j = np.nonzero(sims >= threshold)
            hits += [(top + a, left + b, float(sims[a, b])) for a, b in zip(i.tolist(), j.tolist(), strict=True)]
        hits.sort()
        for i, j, s in hits:
            if keep(i, j):
                if len(found) == MAX_LINT_PAIRS:
                    return found, True
                found.append((i, j, s))
    return found, False


def _nearest_others(records, vectors, knowledge, registry, embedder, datasets) -> list[tuple[int, Match]]:
    """(record index, another adapter's pair) for each record whose nearest other question is at
    or above CROSS_CONFLICT."""
    if knowledge is not None:
        hits = [knowledge.search_vector(vectors[i:i + 1], None, k=1) for i in range(len(records))]
        return [(i, m) for i, found in enumerate(hits) for m in found if m.similarity >= CROSS_CONFLICT]
    if datasets is not None:
        pool = [Match(name, int(version), p.question, p.answer, 0.0) for name, version, path in datasets
                for p in pairs_in_file(Path(path))[0]]
    elif registry is not None:
        pool = [Match(a.name, a.version, p.question, p.answer, 0.0) for a in registry.list() for p in adapter_pairs(a)[0]]
    else:
        return []
    if not pool:
        return []
    best, sims = _best_matches(vectors, embedder.encode([m.question for m in pool]))
    return [(i, Match(**{**pool[b].__dict__, "similarity": round(s, 4)}))
            for i, (b, s) in enumerate(zip(best.tolist(), sims.tolist(), strict=True)) if round(s, 4) >= CROSS_CONFLICT]


def _best_matches(vectors, pool):
    """For each row of vectors, the index and similarity of its nearest row in pool, LINT_BLOCK x
    LINT_BLOCK at a time."""
    import numpy as np

    best = np.zeros(len(vectors), dtype=np.int64)
    sims = np.full(len(vectors), -np.inf, dtype=np.float32)
    for top in range(0, len(vectors), LINT_BLOCK):
        rows = vectors[top:top + LINT_BLOCK]
        for left in range(0, len(pool), LINT_BLOCK):
            block = rows @ pool[left:left + LINT_BLOCK].T
            where, value = block.argmax(axis=1), block.max(axis=1)
            better = value > sims[top:top + len(rows)]  # strictly: the first of equals wins, as argmax does
            best[top:top + len(rows)][better] = left + where[better]
            sims[top:top + len(rows)][better] = value[better]
    return best, sims


def _cross_adapter(records, nearest: list[tuple[int, Match]], answer_of, embedder) -> list[LintFinding]:
    theirs = embedder.encode([m.answer for _, m in nearest])
    found = []
    for (i, match), other_vec in zip(nearest, theirs, strict=True):
        record = records[i]
        if _same_answer(record.answer, match.answer, float(answer_of[i] @ other_vec)):
            continue
        found.append(LintFinding("cross-adapter", [record.row], round(match.similarity, 3),
                                 f"row {record.row}: '{shorten(record.question)}' is close ({match.similarity:.2f}) to "
                                 f"{match.adapter}'s '{shorten(match.question)}', which answers "
                                 f"'{shorten(match.answer)}' rather than '{shorten(record.answer)}' (possible conflict)"))
    return found


def registry_datasets(registry) -> list[tuple[str, int, str]]:
    """(adapter, version, stored Q&A file) for each adapter the lint compares an upload with."""
    return [(a.name, a.version, str(path)) for a in registry.list() if (path := dataset_path(a)) is not None]


def _same_answer(a: str, b: str, similarity: float) -> bool:
    na, nb = _norm(a), _norm(b)
    return similarity >= SAME_ANSWER or bool(na and nb and (na in nb or nb in na))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w%°]+", " ", str(text).lower()).split())


def lint_for_cli(report, data_dir=None) -> list[LintFinding]:
    """`assistant validate`'s lint: against every adapter's stored Q&A, read straight from disk
    (no base is loaded, so usability for this base is not checked; no index is opened)."""
    from assistant.paths import SHIPPED_ADAPTERS, default_data_dir
    from assistant.registry import Registry

    registry = Registry("", Path(data_dir or default_data_dir()), SHIPPED_ADAPTERS)
    return lint_records(report.records, None, registry)
