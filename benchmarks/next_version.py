"""Next-version benchmark: from "a trainer answered 10 new questions" to "v2 serves", on the real base.

`agriculture` v1 (shipped) plus ten answered questions it was never trained on (NEW_PAIRS: crops and
animals its file does not mention) go through assistant.training.next_version exactly as the job
worker runs it: the same recipe and settings as v1, the recipe's report card, then the gate, which
measures v1 and v2 on the same held-out rows, retention probes and the ten new questions.
Measured: the wall time from the call to v2 serving (or being refused), split into its phases
(replay answers, training, report card, gate); v1 vs v2 on the gate's sets, and its decision.
Targets: v2 passes the gate; v2 answers at least 8 of the 10 new questions (v1: fewer than 2).
Nothing is published outside a temporary data directory. Timings on a busy machine mean little:
the table says how busy it was. Writes benchmarks/results/next_version.json.

    .venv/bin/python benchmarks/next_version.py                     # the real base, agriculture
    .venv/bin/python benchmarks/next_version.py --base X.gguf --adapter facts --from-data-dir DIR  # a smoke run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.base import resolve_base  # noqa: E402
from assistant.engines.llamacpp import LlamaCppEngine  # noqa: E402
from assistant.paths import SHIPPED_ADAPTERS  # noqa: E402
from assistant.registry import Registry  # noqa: E402
from assistant.training.next_version import next_version  # noqa: E402
from benchmarks.common import cpu_snapshot, others_cpu_share, write_json  # noqa: E402

NEW_PAIRS = [
    ("How far apart should avocado trees be planted?",
     "Plant avocado trees about 6 to 8 metres apart so their canopies do not crowd each other."),
    ("When should cabbage be harvested?",
     "Harvest cabbage when the heads are firm and solid, usually 70 to 90 days after transplanting."),
    ("How much water does a goat drink each day?",
     "An adult goat drinks about 4 to 8 litres of clean water a day, more when it is hot or in milk."),
    ("At what age do layer hens start laying eggs?", "Layer hens usually start laying at about 18 to 22 weeks of age."),
    ("How do I ripen mangoes after picking?",
     "Keep picked mangoes at room temperature, out of the sun, for 3 to 8 days until they soften and smell sweet."),
    ("How deep should millet seed be sown?", "Sow millet seed shallow, about 2 to 3 cm deep, in a fine firm seedbed."),
    ("When is sunflower ready to harvest?",
     "Harvest sunflower when the back of the head turns yellow to brown and the seeds are hard."),
    ("How many days does a chicken egg take to hatch?", "A chicken egg takes 21 days to hatch."),
    ("How often should goats be dewormed?",
     "Deworm goats every 3 to 4 months, or when a faecal test or pale eyelids show worms."),
    ("What spacing is used for cabbage seedlings?",
     "Transplant cabbage seedlings about 45 to 60 cm apart, in rows 60 cm apart."),
]
PHASES = (("replay", "loading the base, replay answers"), ("train", "training"), ("evaluate", "report card and publishing"),
          ("gate", "gate (v1 and v2 measured)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="default: the embedded Gemma 3 270M")
    parser.add_argument("--adapter", default="agriculture")
    parser.add_argument("--from-data-dir", default=None, help="copy this data directory instead of starting empty")
    args = parser.parse_args()
    base = resolve_base(args.base)
    base.ensure_hf_dir()
    engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
    pairs = [{"question": q, "answer": a, "item_ids": [i], "answered_by": "benchmark"}
             for i, (q, a) in enumerate(NEW_PAIRS, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if args.from_data_dir:
            shutil.copytree(args.from_data_dir, data)
        registry = Registry(base.sha256, data, SHIPPED_ADAPTERS)
        v1 = registry.get(args.adapter)
        marks, started = [], time.perf_counter()

        def note(progress) -> None:
            if not marks or marks[-1][0] != progress.phase:
                marks.append((progress.phase, time.perf_counter() - started))
                print(f"[{time.perf_counter() - started:7.1f} s] {progress.phase}: {progress.message}", flush=True)

        before = cpu_snapshot()
        result = next_version(SimpleNamespace(registry=registry, base=base, engine=engine), args.adapter, pairs,
                              by="benchmark", on_progress=note)
        total = time.perf_counter() - started
        busy = others_cpu_share(before, cpu_snapshot())
        serving = registry.get(args.adapter).version
    phases = _phases(marks, total)
    decision = result.decision
    print(f"\n{args.adapter}: v{v1.version} -> v{result.adapter.version}; {total:.0f} s from the answered questions to "
          f"{'v' + str(serving) + ' serving' if result.promoted else 'the gate refusing it'} "
          f"(others used {busy:.0%} of the CPUs meanwhile)")
    for key, label in PHASES:
        print(f"  {label:32} {phases.get(key, 0.0):7.0f} s")
    print(f"\n{'gate set':40} {'v' + str(v1.version):>7} {'v' + str(result.adapter.version):>7} {'may fall':>9}")
    for row in decision["rows"]:
        print(f"{row['label'] + ' (' + str(row['questions']) + ')':40} {row['serving']:>7.0%} {row['candidate']:>7.0%} "
              f"{row['allowed_drop']:>9.0%}  {'ok' if row['ok'] else 'REGRESSED'}")
    print("decision:", result.summary())
    new = next((r for r in decision["rows"] if r["metric"] == "new_recall"), None)
    checks = [("v2 passes the gate", result.promoted, True),
              ("v2 answers >= 8 of the 10 new questions", new and new["candidate"] * 10, new is not None and new["candidate"] >= 0.8),
              ("v1 answers < 2 of them", new and new["serving"] * 10, new is not None and new["serving"] < 0.2)]
    for name, value, ok in checks:
        print(f"{name:42} {value!s:>6}  {'ok' if ok else 'MISSED'}")
    path = write_json("next_version", {
        "adapter": args.adapter, "base": base.name, "from_version": v1.version, "version": result.adapter.version,
        "promoted": result.promoted, "serving_after": serving, "seconds_to_serving": round(total, 1),
        "phases_s": phases, "others_cpu_share": busy, "decision": decision,
        "v2_report_card": result.adapter.report_card, "train_steps": result.train.steps,
        "checks": [{"name": n, "value": v, "ok": ok} for n, v, ok in checks]})
    print(f"wrote {path}")


def _phases(marks: list[tuple[str, float]], total: float) -> dict[str, float]:
    """Seconds in each phase, from when each first reported to when the next one did."""
    spans: dict[str, float] = {}
    for (phase, at), end in zip(marks, [m[1] for m in marks[1:]] + [total], strict=True):
        key = "replay" if phase in ("prepare", "replay") else phase
        spans[key] = round(spans.get(key, 0.0) + end - at, 1)
    return spans


if __name__ == "__main__":
    main()
