"""The trust benchmark's question sets: datasets/trust/ and the shipped adapter's held-out paraphrases."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.paths import DATASETS, SHIPPED_ADAPTERS

ADAPTER = "agriculture"
TRUST = DATASETS / "trust"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dataset_rows() -> list[dict]:
    return read_jsonl(SHIPPED_ADAPTERS / ADAPTER / "dataset.jsonl")


def heldout_set() -> list[dict]:
    """The adapter's held-out paraphrases (split "test", never trained on nor indexed)."""
    return [{"question": r["question"], "pair_question": r["paraphrase_of"], "keywords": r["keywords"]}
            for r in dataset_rows() if r.get("split") == "test" and r.get("paraphrase_of")]
