"""Where things live: the shipped adapters, the data directory and the shared cache.

The data directory holds what users make (published adapters, uploads, exports); the cache holds
what can be rebuilt (the assembled base GGUF, its converted HF copy) and is shared between clones
of the project on one machine, so a fresh checkout or CI run does not convert the base again.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ADAPTERS = REPO_ROOT / "adapters"
DATASETS = REPO_ROOT / "datasets"


def shipped_dataset(name: str) -> Path:
    """The Q&A file the shipped adapter `name` is trained from (datasets/NAME/NAME.jsonl)."""
    return DATASETS / name / f"{name}.jsonl"


def default_data_dir() -> Path:
    return Path(os.environ.get("ASSISTANT_DATA_DIR") or REPO_ROOT / "var")


def default_cache_dir() -> Path:
    env = os.environ.get("ASSISTANT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lora-assistant"
