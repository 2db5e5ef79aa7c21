"""What makes a directory a servable adapter: its manifest, its files and their hashes, no pickles,
a LoRA for this base. The registry asks; this module only reads and says what is wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.fsutil import sha256_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter.gguf")
MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")  # an adapter name (adapter_names.validate_name says why not)


def inspect_adapter(path: Path, base_sha256: str) -> tuple[dict, str | None]:
    """(manifest, problem) for an adapter directory; problem is None when it can be served."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return {}, "no manifest.json"
    except (OSError, ValueError) as exc:
        return {}, f"manifest.json is unreadable ({exc})"
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        return manifest, f"contains pickle file(s) {', '.join(pickles)}; only safetensors adapters are loaded"
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        return manifest, f"missing {', '.join(missing)}"
    for key in ("name", "version", "base_sha256", "prompt_format"):
        if key not in manifest:
            return manifest, f"manifest.json lacks '{key}'"
    if not NAME_RE.fullmatch(str(manifest["name"])):
        return manifest, f"invalid adapter name {manifest['name']!r}"
    for fname, expected in (manifest.get("files") or {}).items():
        target = path / fname
        if not target.is_file() or sha256_file(target) != expected:
            return manifest, f"{fname} is corrupt or changed (sha256 does not match the manifest)"
    problem = _check_peft_files(path)
    if problem:
        return manifest, problem
    if manifest["base_sha256"] != base_sha256:
        return manifest, (f"trained for another base ({str(manifest['base_sha256'])[:12]}…); "
                          f"this app runs base {base_sha256[:12]}…")
    return manifest, None


def _check_peft_files(path: Path) -> str | None:
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"adapter_config.json is unreadable ({exc})"
    if config.get("peft_type") != "LORA":
        return f"not a LoRA adapter (peft_type {config.get('peft_type')!r})"
    try:
        from safetensors import safe_open

        with safe_open(path / "adapter_model.safetensors", framework="numpy") as fh:
            if not list(fh.keys()):
                return "adapter_model.safetensors holds no tensors"
    except Exception as exc:
        return f"adapter_model.safetensors is corrupt ({type(exc).__name__})"
    with (path / "adapter.gguf").open("rb") as fh:
        if fh.read(4) != b"GGUF":
            return "adapter.gguf is not a GGUF file"
    return None
