"""Where things live: the shipped adapters, the data directory and the shared cache.

The data directory holds what users make (published adapters, uploads, exports); the cache holds
what can be rebuilt (the assembled base GGUF, its converted HF copy) and is shared between clones
of the project on one machine, so a fresh checkout or CI run does not convert the base again.
What is compiled for this CPU (the llama-cpp-python wheel, llama-server) sits in the cache under
`cpu_key()`, so a cache shared between different machines never hands one a binary built for another.

This module imports only the standard library: the Makefile runs it before the venv exists.
"""

from __future__ import annotations

import hashlib
import os
import platform
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


def cpu_key(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU a native build is for: its architecture and a hash of its instruction-set flags.

    llama.cpp compiles with -march=native (GGML_NATIVE), so a wheel or llama-server built on a Xeon
    with AMX or AVX-512 FP16 dies with SIGILL on a CPU without them. A home on NFS or a CI cache can
    be shared by such machines; keyed by flags, each CPU gets (and builds once) its own. Two CPUs
    with the same flags share a build: only the instructions matter, not the model name.
    """
    flags: list[str] = []
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                # x86 says "flags", arm64 "Features"; the first processor speaks for all of them.
                if line.startswith(("flags", "Features")) and ":" in line:
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:  # no /proc (macOS): the architecture alone names the build
        pass
    digest = hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest()[:12]
    return f"{platform.machine() or 'unknown'}-{digest}"


if __name__ == "__main__":  # `python3 assistant/paths.py`: the Makefile's and the build script's key
    print(cpu_key())
