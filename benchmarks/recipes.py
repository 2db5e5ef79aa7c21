"""Recipe benchmark: the same agriculture facts trained with variants of the recipe, side by side.

A subset keeps a comparison within minutes on 2 cores: training rows that have a held-out
paraphrase in datasets/agriculture (the first 26 of 52 such facts by default, each asked once for
training), and those paraphrases as the held-out set. Each run is the `fast` recipe with the shipped
agriculture overrides (scripts/build_adapters.py) and the run's own changes (generated question
forms, grounded copies, epochs, rank, ...), trained into a temporary data directory and scored by
the llama.cpp engine users chat with: recall, held-out recall alone, with the right pair shown, with
a wrong pair shown, retention. One process, one base, runs in the order given; timings say how busy
the machine was. The curves of issue 17 (held-out recall against augmentation, epochs, rank) are
runs of this.

  .venv/bin/python benchmarks/recipes.py --runs "augment=0;augment=4;grounded_per_step=8;rank=32"
  .venv/bin/python benchmarks/recipes.py --file datasets/xylandia/xylandia.jsonl --runs ";grounded_per_step=16"
Writes benchmarks/results/recipes.json (recipes-<file>.json with --file).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.base import resolve_base  # noqa: E402
from assistant.data import read_qa_bytes  # noqa: E402
from assistant.engines.llamacpp import LlamaCppEngine  # noqa: E402
from assistant.registry import Registry  # noqa: E402
from assistant.training.config import SHIPPED_RECIPES, preset  # noqa: E402
from assistant.training.recipe import train  # noqa: E402
from benchmarks.common import cpu_snapshot, others_cpu_share  # noqa: E402

DATA = ROOT / "datasets" / "agriculture" / "agriculture.jsonl"
# the subset is trained with agriculture's shipped changes but without its epoch cap: 26 facts make one step an epoch
SUBSET_OVERRIDES = {k: v for k, v in SHIPPED_RECIPES["agriculture"].items() if k != "epochs"}


def subset(limit: int) -> bytes:
    """The training rows with a held-out paraphrase, and those paraphrases, as a JSONL file."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    tested = [r for r in rows if r.get("split") == "test" and r.get("paraphrase_of")]
    asked = list(dict.fromkeys(r["paraphrase_of"] for r in tested))[:limit]
    keep = [r for r in rows if r.get("split") != "test" and r["question"] in asked]
    keep += [r for r in tested if r["paraphrase_of"] in asked]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep).encode()


def share_swap_answers() -> None:
    """The bare base's answers to the place-swapped questions depend on the training questions and
    the seed only, the same in every run here: asked once (minutes on a busy machine), then reused."""
    from assistant.training import replay

    asked, real = {}, replay.swap_answers

    def swap_answers(questions, cfg, answer, cancel):
        key = (tuple(questions), cfg.swap_replay, cfg.seed)
        if key not in asked:
            asked[key] = real(questions, cfg, answer, cancel)
        return asked[key]

    replay.swap_answers = swap_answers


def parse_run(spec: str) -> dict:
    """`key=value,key=value` -> typed TrainConfig overrides, read as `assistant train --set` reads them.
    A part without "=" continues the value before it, so a list reads as it does on the command
    line: `target_modules=q_proj,v_proj,rank=8`."""
    from assistant.cli.train import parse_overrides

    items: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part and "=" not in part and items:
            items[-1] += "," + part
        elif part:
            items.append(part)
    try:
        return parse_overrides(items)
    except ValueError as exc:
        sys.exit(f"--runs/--candidate {spec!r}: {exc}")


def run(overrides: dict, data: bytes, base, engine, data_dir: Path, index: int, source: str = "",
        shipped: dict | None = None) -> dict:
    report = read_qa_bytes(data, source or "agriculture-subset.jsonl")
    registry = Registry(base.sha256, data_dir)
    started, before = time.monotonic(), cpu_snapshot()
    cfg = preset("fast", **{**(SUBSET_OVERRIDES if shipped is None else shipped), **overrides})
    result = train(cfg, base, registry, report, f"run{index}", evaluator=engine, data_bytes=data,
                   on_progress=lambda p: print(f"  [{p.phase}] {p.message}", flush=True)
                   if p.phase != "train" or p.step % 5 == 0 else None)
    card = result.report_card
    after = card.get("after", {})
    manifest = result.adapter.manifest
    return {"changes": overrides, "train_pairs": len(report.train), "heldout": len(report.test),
            "generated": manifest["dataset"].get("generated_pairs", 0), "steps": result.steps,
            "learned_at_step": result.learned_at_step, "train_seconds": round(result.train_seconds, 1),
            "total_seconds": round(time.monotonic() - started, 1), "recall": after.get("recall"),
            "heldout_recall": after.get("heldout_recall"),
            "right_pair": after.get("heldout_recall_right_pair"),
            "wrong_pair": after.get("heldout_recall_wrong_pair"),
            "base_right_pair": card.get("before", {}).get("heldout_recall_right_pair"),
            "retention": after.get("retention"), "others_cpu_share": others_cpu_share(before, cpu_snapshot()),
            "misses": [m["question"] for m in card.get("misses", [])],
            "misses_right_pair": [(m["question"], m["answer"]) for m in card.get("misses_right_pair", [])],
            "forgotten": [m["question"] for m in card.get("forgotten", [])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="augment=0;grounded_per_step=8",
                        help="runs separated by ';', each `key=value,...` changes to the recipe ('' for none)")
    parser.add_argument("--facts", type=int, default=26, help="how many held-out facts to train and score")
    parser.add_argument("--file", default=None, help="train on this whole Q&A file instead (agriculture.jsonl or "
                        "xylandia.jsonl get the overrides their shipped adapter is built with)")
    args = parser.parse_args()
    data = Path(args.file).read_bytes() if args.file else subset(args.facts)
    source = Path(args.file).name if args.file else ""
    shipped = SHIPPED_RECIPES.get(Path(source).stem, {}) if args.file else None
    share_swap_answers()
    base = resolve_base()
    base.ensure_hf_dir()
    engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, spec in enumerate(args.runs.split(";")):
            overrides = parse_run(spec)
            print(f"training with {overrides or 'the shipped recipe'}…", flush=True)
            rows.append(run(overrides, data, base, engine, Path(tmp), index, source, shipped))
            print(json.dumps(rows[-1]), flush=True)
            # written after every run: a later run cut short still leaves the earlier ones
            results = out / (f"recipes-{Path(source).stem}.json" if source else "recipes.json")
            results.write_text(json.dumps({"file": source or f"agriculture subset, {args.facts} facts", "runs": rows},
                                          indent=2))
    print(f"\n{'changes':<40} {'forms':>5} {'steps':>5} {'train s':>8} {'recall':>7} {'held-out':>9} {'right pair':>10}"
          f" {'wrong pair':>10} {'retention':>10} {'machine busy':>13}")
    for r in rows:
        changes = ",".join(f"{k}={v}" for k, v in r["changes"].items()) or "(shipped recipe)"
        print(f"{changes:<40} {r['generated']:>5} {r['steps']:>5} {r['train_seconds']:>8} {_pct(r['recall']):>7} "
              f"{_pct(r['heldout_recall']):>9} {_pct(r['right_pair']):>10} {_pct(r['wrong_pair']):>10} "
              f"{_pct(r['retention']):>10} {_pct(r['others_cpu_share']):>13}")


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
