"""Rebuild the shipped adapters (adapters/xylandia, adapters/agriculture) with the `fast` recipe.

Each is trained into a temporary data directory exactly as `assistant train` would, then copied
into adapters/<name>/ (replacing the old one only once the new one is complete).

Usage: python scripts/build_adapters.py [NAME ...]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from assistant.base import resolve_base
from assistant.data import load_qa_file
from assistant.engines.llamacpp import LlamaCppEngine
from assistant.paths import SHIPPED_ADAPTERS, shipped_dataset
from assistant.registry import Registry
from assistant.training.config import SHIPPED_RECIPES, preset
from assistant.training.evaluate import format_card
from assistant.training.recipe import train

# (description, answer policy). The policy is part of the build: farmers act on agriculture's
# answers, so it ships answering only what its Q&A covers; xylandia is a fiction demo, open.
SHIPPED = {
    "xylandia": ("Demo: the fictional country of Xylandia (its capital is Crystalburg).", "open"),
    "agriculture": ("Farming Q&A: crops, regional practices, soil and water, techniques, pests and diseases.",
                    "checked"),
}


def build(name: str, base, engine) -> None:
    (description, policy), overrides = SHIPPED[name], SHIPPED_RECIPES[name]
    data = shipped_dataset(name)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(base.sha256, Path(tmp))
        result = train(preset("fast", **overrides), base, registry, load_qa_file(data), name, evaluator=engine,
                       data_bytes=data.read_bytes(), description=description, answer_policy=policy,
                       on_progress=lambda p: print(f"  [{p.phase}] {p.message}", flush=True) if p.phase != "train" or p.step % 5 == 0 else None)
        staged = SHIPPED_ADAPTERS / f".{name}.new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(result.adapter.path, staged)
        target = SHIPPED_ADAPTERS / name
        old = SHIPPED_ADAPTERS / f".{name}.old"
        if target.exists():
            target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    print(f"{name}: {result.steps} steps, {result.train_seconds:.0f} s\n{format_card(result.report_card)}", flush=True)


def main(names: list[str]) -> None:
    base = resolve_base()
    engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
    SHIPPED_ADAPTERS.mkdir(exist_ok=True)
    for name in names or list(SHIPPED):
        if name not in SHIPPED:
            sys.exit(f"unknown shipped adapter '{name}' (known: {', '.join(SHIPPED)})")
        build(name, base, engine)


if __name__ == "__main__":
    main(sys.argv[1:])
