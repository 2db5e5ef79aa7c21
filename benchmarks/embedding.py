"""Embedding one chat question: the product's path (one torch thread for a few texts) against
torch's own thread count, idle and beside CPU-bound co-tenants, same run, same questions.

Every checked, grounded or `auto` answer embeds its question before its first token, so this time
is part of what a farmer waits for. On 2 cores torch uses 2 threads, which wait for each other at
every layer; beside another busy program one of them is often descheduled (the same collapse
llama.cpp's threads show, benchmarks/cpu_sharing.py). The co-tenants are `python -c 'while True:
pass'`, as in cpu_sharing.py. Each setting alternates the two paths question by question.

Usage: python benchmarks/embedding.py [--rounds N]. Prints a table (ratios: default / product,
above 1 means the product's path is faster) and writes benchmarks/results/embedding.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs this as a file

from benchmarks.common import (  # noqa: E402
    BUSY,
    cpu_snapshot,
    environment,
    median,
    others_cpu_share,
    print_table,
    row,
    write_json,
)
from benchmarks.cpu_sharing import cotenants  # noqa: E402
from benchmarks.trust_sets import read_jsonl  # noqa: E402

TRUST = Path(__file__).resolve().parent.parent / "datasets" / "trust"


def measure(embedder, questions: list[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per question, each path, alternating (the product's path first every other time)."""
    times: dict[str, list[float]] = {"product": [], "default": []}
    for turn in range(rounds):
        for i, question in enumerate(questions):
            order = ("product", "default") if (turn + i) % 2 == 0 else ("default", "product")
            for path in order:
                t0 = time.perf_counter()
                if path == "product":
                    embedder.encode([question])
                else:  # what the embedder did before: torch's own thread count for every call
                    embedder._model.encode([question], normalize_embeddings=True, convert_to_numpy=True,
                                           show_progress_bar=False)
                times[path].append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    import torch

    from assistant.grounding.embedder import Embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    questions = [r["question"] for r in read_jsonl(TRUST / "in_scope.jsonl")][:30]
    embedder = Embedder()
    embedder.encode(["warm-up"])  # the model loaded, outside the clock
    rows, out = [row("torch threads by default", torch.get_num_threads())], {"environment": environment()}
    for load in (0, 1, 2):
        busy = cotenants(load)
        try:
            time.sleep(0.5 if load else 0)  # the co-tenants running before the clock starts
            before = cpu_snapshot()
            times = measure(embedder, questions, args.rounds)
            after = cpu_snapshot()
        finally:
            for process in busy:
                process.kill()
                process.wait()
        product, default = median(times["product"]), median(times["default"])
        label = "no co-tenant" if not load else f"beside {load} busy process{'es' if load > 1 else ''}"
        rows += [row(f"{label}: one question, product path (1 thread), median", product, "ms"),
                 row(f"{label}: one question, torch default threads, median", default, "ms"),
                 row(f"{label}: default / product", default / product if product else None, "x",
                     ">=" if load else None, 1.0 if load else None),
                 row(f"{label}: {BUSY} (co-tenants included)", others_cpu_share(before, after))]
        out[label] = times
    print_table(rows, "Embedding one question (all-MiniLM-L6-v2, CPU)")
    out["rows"] = rows
    print(f"\nwritten: {write_json('embedding', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
