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

`--shipped agriculture,xylandia` instead trains each shipped adapter's whole file twice in one run:
with the recipe its shipped build records (adapters/NAME/manifest.json, "today") and with the
current build recipe (SHIPPED_RECIPES) plus `--candidate` changes ("new"; trained once when the two
are the same; `--candidate "agriculture: augment=2,epochs=3; xylandia: augment=2"` changes each its
own), and checks "new" against issue 17's targets: agriculture held-out recall alone >= 70%, with
the right pair shown >= 95%, retention >= 95%, training time new / today <= 1.0; xylandia recall
and held-out 100%, retention >= 95%. About 45 minutes on 2 cores; writes train-shipped.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.base import resolve_base  # noqa: E402
from assistant.data import load_qa_file  # noqa: E402
from assistant.engines.llamacpp import LlamaCppEngine  # noqa: E402
from assistant.paths import SHIPPED_ADAPTERS, shipped_dataset  # noqa: E402
from assistant.registry import Registry  # noqa: E402
from assistant.training.config import SHIPPED_RECIPES, TrainConfig, preset  # noqa: E402
from assistant.training.recipe import train  # noqa: E402
from benchmarks.common import cpu_snapshot, others_cpu_share  # noqa: E402
from benchmarks.recipes import parse_run, share_swap_answers  # noqa: E402
from benchmarks.recipes import run as run_recipe  # noqa: E402

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


# issue 17: (what, result key, lowest allowed) for the "new" recipe on each shipped file
SHIPPED_TARGETS = {
    "agriculture": [("held-out recall, adapter alone", "heldout_recall", 0.70),
                    ("held-out recall, right pair shown", "right_pair", 0.95), ("retention", "retention", 0.95)],
    "xylandia": [("recall", "recall", 1.0), ("held-out recall, adapter alone", "heldout_recall", 1.0),
                 ("retention", "retention", 0.95)],
}
RECIPE_NAMES = {"today": "today's recipe", "new": "the new recipe"}
TIMED = "agriculture"  # the file whose training time new / today must stay <= 1.0


def recorded_recipe(name: str) -> dict:
    """The config the shipped adapter was built with, as its manifest records it (TrainConfig fields
    only). A field added since takes its default, which is off (augment 0, no grounded copies): what
    the build did before the field existed."""
    training = json.loads((SHIPPED_ADAPTERS / name / "manifest.json").read_text())["training"]
    known = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in training.items() if k in known}


def parse_candidates(spec: str, names: list[str]) -> dict[str, dict]:
    """`NAME: k=v,...; NAME: k=v,...` (or one `k=v,...` for every name) -> each name's changes."""
    changes = {name: {} for name in names}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, colon, rest = part.partition(":")
        if not colon:
            for each in changes.values():
                each.update(parse_run(part))
        elif name.strip() in changes:
            changes[name.strip()].update(parse_run(rest))
        else:
            sys.exit(f"--candidate names {name.strip()}, which is not among --shipped {', '.join(names)}")
    return changes


def shipped(names: list[str], candidates: dict[str, dict]) -> None:
    """Today's recipe against the new one on each shipped file, in one process, checked against targets."""
    share_swap_answers()
    base = resolve_base()
    base.ensure_hf_dir()
    engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
    results, checks = {}, []
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)

    def write_json() -> None:
        (out / "train-shipped.json").write_text(json.dumps({
            "adapters": results,
            "checks": [dict(zip(("name", "value", "target", "ok"), c, strict=True)) for c in checks]}, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = shipped_dataset(name)
            data = path.read_bytes()
            today = recorded_recipe(name)
            candidate = candidates[name]
            new = {**SHIPPED_RECIPES[name], **candidate}
            same = asdict(preset("fast", **today)) == asdict(preset("fast", **new))
            rows = {}
            for label, recipe in [("today", today)] + ([] if same else [("new", new)]):
                print(f"{name}: training with {RECIPE_NAMES[label]}…", flush=True)
                rows[label] = run_recipe({}, data, base, engine, Path(tmp), len(results) * 2 + len(rows),
                                         path.name, recipe)
            rows.setdefault("new", rows["today"])
            results[name] = {"same_recipe": same, "new_changes": candidate, **rows}
            for what, key, lowest in SHIPPED_TARGETS[name]:
                value = rows["new"][key]
                checks.append((f"{name}: {what}", value, f">= {lowest:.2f}", value is not None and value >= lowest))
            if name == TIMED and same:  # one run timed against itself would read 1.00, "ok", and say nothing
                checks.append((f"{name}: training time new / today", None, "<= 1.00", None))
            elif name == TIMED:
                ratio = rows["new"]["train_seconds"] / rows["today"]["train_seconds"]
                checks.append((f"{name}: training time new / today", ratio, "<= 1.00", ratio <= 1.0))
            write_json()  # after every file: an hour of training is not lost to a later failure
    print(f"\n{'adapter, recipe':<22} {'steps':>5} {'train s':>8} {'recall':>7} {'held-out':>9} {'right pair':>10}"
          f" {'wrong pair':>10} {'retention':>10} {'machine busy':>13}")
    for name, result in results.items():
        for label in ("today", "new"):
            r = result[label]
            print(f"{name + ', ' + label:<22} {r['steps']:>5} {r['train_seconds']:>8} {_pct(r['recall']):>7} "
                  f"{_pct(r['heldout_recall']):>9} {_pct(r['right_pair']):>10} {_pct(r['wrong_pair']):>10} "
                  f"{_pct(r['retention']):>10} {_pct(r['others_cpu_share']):>13}")
        if result["same_recipe"]:
            print(f"  ({name}: the new recipe is the recorded one, so it was trained once)")
    print()
    for what, value, target, ok in checks:
        verdict = "n/a (same recipe)" if ok is None else "ok" if ok else "MISSED"
        print(f"{what:46} {'-' if value is None else round(value, 3):>8} {target:>8}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="fast,seed")
    parser.add_argument("--shipped", default=None, help="comma-separated shipped adapters (agriculture,xylandia): "
                        "today's recipe against the new one, checked against issue 17's targets")
    parser.add_argument("--candidate", default="", help="with --shipped: `key=value,...` changes to the new recipe, or `NAME: key=value,...; ...` for each")
    args = parser.parse_args()
    if args.shipped:
        names = [n.strip() for n in args.shipped.split(",") if n.strip()]
        unknown = [n for n in names if n not in SHIPPED_TARGETS]
        if unknown:
            sys.exit(f"unknown shipped adapter {', '.join(unknown)} (known: {', '.join(SHIPPED_TARGETS)})")
        shipped(names, parse_candidates(args.candidate, names))
        return
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
        print(f"{name:34} {'-' if value is None else round(value, 3):>8} {target:>8}  {'ok' if ok else 'MISSED'}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps({"runs": rows, "peak_rss_gb": peak_gb,
                                                "checks": [dict(zip(("name", "value", "target", "ok"), c, strict=True))
                                                           for c in checks]}, indent=2))


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
