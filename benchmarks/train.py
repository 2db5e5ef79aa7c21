"""Training benchmark: the proof-of-concept recipe (`seed`) against ours (`fast`) on xylandia.

One process, one base: both recipes train on the same cached HF copy of the embedded base and are
scored by the same llama.cpp engine (the one users chat with). Measured for each:
- wall time until the adapter reproduces every training answer (teacher-forced argmax at every
  answer token, read off the training step itself; the seed recipe has no early stop, so its full
  run is reported too);
- the report card: recall, held-out recall, retention on datasets/probes/general.jsonl;
- peak RSS while it ran (sampled every 50 ms; the loaded base and the llama.cpp engine included).
`fast` runs first, so its peak is not inflated by what the other run left in the allocator.
Targets: fast >= 6x faster than seed; fast held-out recall >= 90% and retention >= 95%; peak RSS
<= 4 GB. Prints a table and writes benchmarks/results/train.json. Nothing is published outside a
temporary data directory. Timings on a busy machine are meaningless: the table says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.base import resolve_base  # noqa: E402
from assistant.data import load_qa_file  # noqa: E402
from assistant.engines.llamacpp import LlamaCppEngine  # noqa: E402
from assistant.registry import Registry  # noqa: E402
from assistant.training.config import preset  # noqa: E402
from assistant.training.recipe import train  # noqa: E402
from benchmarks.common import cpu_snapshot, others_cpu_share  # noqa: E402

DATA = ROOT / "datasets" / "xylandia" / "xylandia.jsonl"


class PeakRSS:
    """Peak resident memory of this process between start and stop, sampled in a thread."""

    def __enter__(self):
        import psutil

        self.peak, self._stop, self._proc = 0, threading.Event(), psutil.Process()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def run(recipe: str, base, engine, data_dir: Path) -> dict:
    report = load_qa_file(DATA)
    registry = Registry(base.sha256, data_dir)
    started = time.monotonic()
    before = cpu_snapshot()
    with PeakRSS() as memory:
        result = train(preset(recipe), base, registry, report, f"bench-{recipe}", evaluator=engine)
    busy = others_cpu_share(before, cpu_snapshot())
    after = result.report_card.get("after", {})
    return {"recipe": recipe, "steps": result.steps, "train_seconds": round(result.train_seconds, 1),
            "learned_seconds": None if result.learned_seconds is None else round(result.learned_seconds, 1),
            "learned_at_step": result.learned_at_step, "total_seconds": round(time.monotonic() - started, 1),
            "recall": after.get("recall"), "heldout_recall": after.get("heldout_recall"),
            "retention": after.get("retention"), "final_loss": result.losses[-1] if result.losses else None,
            "peak_rss_gb": memory.peak / 1e9, "others_cpu_share": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="fast,seed")
    args = parser.parse_args()
    base = resolve_base()
    base.ensure_hf_dir()
    engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes.split(","):
            print(f"training with the {recipe} recipe…", flush=True)
            rows.append(run(recipe, base, engine, Path(tmp)))
    by = {r["recipe"]: r for r in rows}
    peak_gb = by["fast"]["peak_rss_gb"] if "fast" in by else max(r["peak_rss_gb"] for r in rows)
    print(f"\n{'recipe':8} {'steps':>5} {'learnt at':>10} {'train s':>8} {'recall':>7} {'held-out':>9} {'retention':>10}"
          f" {'peak RSS':>9} {'machine busy':>13}")
    for r in rows:
        learnt = f"{r['learned_seconds']}s" if r["learned_seconds"] is not None else "never"
        print(f"{r['recipe']:8} {r['steps']:>5} {learnt:>10} {r['train_seconds']:>8} {_pct(r['recall']):>7} "
              f"{_pct(r['heldout_recall']):>9} {_pct(r['retention']):>10} {r['peak_rss_gb']:>7.2f}GB"
              f" {_pct(r['others_cpu_share']):>13}")
    checks = []
    if "seed" in by and "fast" in by:
        seed_time = by["seed"]["learned_seconds"] or by["seed"]["train_seconds"]
        fast_time = by["fast"]["learned_seconds"] or by["fast"]["train_seconds"]
        checks.append(("speed-up, seed time / fast time", seed_time / fast_time, ">= 6", seed_time / fast_time >= 6))
    if "fast" in by:
        f = by["fast"]
        checks.append(("fast held-out recall", f["heldout_recall"], ">= 0.90", (f["heldout_recall"] or 0) >= 0.9))
        checks.append(("fast retention", f["retention"], ">= 0.95", (f["retention"] or 0) >= 0.95))
    checks.append(("fast peak RSS (GB)", peak_gb, "<= 4", peak_gb <= 4))
    print()
    for name, value, target, ok in checks:
        print(f"{name:34} {value if value is None else round(value, 3):>8} {target:>8}  {'ok' if ok else 'MISSED'}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps({"runs": rows, "peak_rss_gb": peak_gb,
                                                "checks": [dict(zip(("name", "value", "target", "ok"), c, strict=True))
                                                           for c in checks]}, indent=2))


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
