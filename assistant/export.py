"""Export an adapter for use outside this app: llama.cpp / Ollama GGUFs, or a merged HF model.

Formats:
    lora-gguf     the adapter alone as a llama.cpp LoRA GGUF, to use beside the base GGUF
                  (llama-cli --lora, Ollama ADAPTER)
    gguf-f16      the adapter merged into the base, one complete GGUF (tokenizer and chat template
    gguf-q8_0     included), quantized by llama.cpp's own quantizer through llama-cpp-python
    gguf-q4_k_m
    hf            merged safetensors + config + tokenizer + chat template, for plain transformers

Every export is a directory `<exports>/<adapter>-v<N>-<format>/` with the model files, a `Modelfile`
for Ollama and `export.json` (sha256 of every file, base, adapter, format, verification result).

Memory: the merge streams one tensor at a time (read W, add scale * B @ A, write, free), so peak
memory is about the largest tensor (the 262k x 640 embedding), not the model: the naive merge of the
270M model in fp32 peaked at 5.3 GB. Safety: everything is built in a hidden staging directory beside
the target (`.<target>.<pid>.staging`), `export.json` is written last and the directory renamed into
place at the end, so a crash or a kill never leaves a half-written file under a final name.
Verification runs in a separate process (assistant.verify_export) on the finished files.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.gguf_io import (
    PEFT_PREFIX,
    GGUFExportError,
    _add_gemma3_metadata,
    _check_lora_config,
    gguf_tensor_name,
)
from assistant.prompts import get_format
from assistant.registry import sha256_file, write_json_atomic

FORMATS = ("lora-gguf", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "hf")
QUANT_TYPES = {"gguf-f16": "F16", "gguf-q8_0": "Q8_0", "gguf-q4_k_m": "Q4_K_M"}
EXPORT_JSON = "export.json"
MODELFILE = "Modelfile"
# Re-quantizing to 4 bits erases a LoRA: the base was itself Q4_K_M, so W + scale * B @ A rounds
# back onto W's 4-bit grid. Measured on xylandia: recall 100% -> 0% with every tensor at Q4_K_M.
# The matrices the LoRA changed are therefore kept at 8 bits; the rest is Q4_K_M as usual.
KEEP_CHANGED = {"Q4_K_M": "Q8_0"}
RECALL_TOLERANCE = 0.10  # an export may trail the peft model's recall by at most 10 points
VERIFY_TIMEOUT_S = 1800

# Chat templates (Jinja, as llama.cpp and transformers read them), rendering exactly what
# assistant.prompts renders for the same conversation (tests check this).
CHAT_TEMPLATES = {
    "qa": ("{{ bos_token }}{% for message in messages %}"
           "{% if message['role'] == 'user' %}Question: {{ message['content'] | trim }}\nAnswer:"
           "{% elif message['role'] == 'assistant' %} {{ message['content'] | trim }}\n\n{% endif %}"
           "{% endfor %}"),
    "gemma-chat": ("{{ bos_token }}{% for message in messages %}"
                   "{% if message['role'] == 'user' %}<start_of_turn>user\n{{ message['content'] | trim }}<end_of_turn>\n"
                   "{% elif message['role'] == 'assistant' %}<start_of_turn>model\n{{ message['content'] | trim }}"
                   "<end_of_turn>\n{% endif %}{% endfor %}"
                   "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
}
# The same layouts as Ollama (Go) templates, and the stops Ollama needs to end an answer.
OLLAMA_TEMPLATES = {
    "qa": ('{{- range .Messages }}{{- if eq .Role "user" }}Question: {{ .Content }}\nAnswer:'
           '{{- else if eq .Role "assistant" }} {{ .Content }}\n\n{{ end }}{{- end }}'),
    "gemma-chat": ('{{- range .Messages }}{{- if eq .Role "user" }}<start_of_turn>user\n{{ .Content }}<end_of_turn>\n'
                   '{{- else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n'
                   '{{ end }}{{- end }}<start_of_turn>model\n'),
}
OLLAMA_STOPS = {"qa": ("Question:", "<eos>"), "gemma-chat": ("<end_of_turn>", "<eos>")}

Progress = Callable[[str, str], None]  # (phase, message)


class ExportError(Exception):
    """The export cannot be made; the message is one line for the user."""


@dataclass
class ExportResult:
    """A finished export: where it is and what export.json says about it."""

    path: Path
    info: dict

    @property
    def passed(self) -> bool | None:
        """True/False once verified; None when verification was skipped."""
        return (self.info.get("verification") or {}).get("passed")

    @property
    def files(self) -> list[Path]:
        return [self.path / name for name in self.info["files"]]


# The whole export, top to bottom --------------------------------------------------------------

def export_adapter(base, adapter, fmt: str, out_root: Path, verify: bool = True,
                   progress: Progress | None = None) -> ExportResult:
    """Export one adapter version in one format into `out_root/<name>-v<N>-<format>/`."""
    say = progress or (lambda phase, message: None)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}' (choose from: {', '.join(FORMATS)})")
    started = time.time()
    out_root = Path(out_root)
    target = out_root / export_dir_name(adapter.name, adapter.version, fmt)
    staging = _new_staging(out_root, target.name)
    try:
        say("prepare", f"exporting {adapter.name} v{adapter.version} as {fmt}")
        if fmt == "lora-gguf":
            files = _export_lora(base, adapter, staging, say)
        elif fmt == "hf":
            files = _export_hf(base, adapter, staging, say)
        else:
            files = _export_merged_gguf(base, adapter, fmt, staging, say)
        (staging / MODELFILE).write_text(modelfile_text(fmt, adapter.prompt_format, files, base))
        build_seconds = time.time() - started
        verification = None
        if verify:
            say("verify", "asking the adapter's questions to the export and to the peft model (separate process)")
            verification = run_verification(base, adapter, fmt, staging, files)
        info = {"format": fmt, "adapter": {"name": adapter.name, "version": adapter.version,
                                           "prompt_format": adapter.prompt_format},
                "base": {"name": base.name, "sha256": base.sha256,
                         "gguf": str(base.gguf_path) if base.gguf_path else None},
                "model_files": files, "build_seconds": round(build_seconds, 1),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "verification": verification}
        say("finish", "hashing files and moving the export into place")
        info["files"] = {p.name: sha256_file(p) for p in sorted(_all_files(staging))}
        write_json_atomic(staging / EXPORT_JSON, info)  # last: its presence means the export is complete
        _move_into_place(staging, target)
    except OSError as exc:
        raise ExportError(_os_error_message(exc, out_root)) from exc
    except GGUFExportError as exc:
        raise ExportError(str(exc)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was moved into place
    result = ExportResult(target, info)
    say("done", "verified" if result.passed else ("NOT verified" if result.passed is None else "verification FAILED"))
    return result


def format_verification(verification: dict | None) -> str:
    """The verification as text lines (the CLI prints this; the UI shows the same as a table)."""
    if not verification:
        return "verification: skipped"
    if verification.get("error"):
        return f"verification: FAILED ({verification['error']})"
    lines = [f"{'set':10} {'questions':>9} {'same tokens':>11} {'peft recall':>11} {'export recall':>13}  result"]
    for row in verification["sets"]:
        lines.append(f"{row['set']:10} {row['questions']:>9} {row['token_identical']:>11.0%} "
                     f"{row['reference_recall']:>11.0%} {row['export_recall']:>13.0%}  {'ok' if row['passed'] else 'FAILED'}")
    lines.append("verification: " + ("passed" if verification["passed"] else "FAILED"))
    return "\n".join(lines)


def export_dir_name(name: str, version: int, fmt: str) -> str:
    return f"{name}-v{version}-{fmt}"


def list_exports(out_root: Path) -> list[ExportResult]:
    """Finished exports (those with export.json), newest first; staging directories are hidden."""
    found = []
    if Path(out_root).is_dir():
        for path in Path(out_root).iterdir():
            if path.name.startswith(".") or not (path / EXPORT_JSON).is_file():
                continue
            try:
                found.append(ExportResult(path, json.loads((path / EXPORT_JSON).read_text())))
            except (OSError, ValueError):
                continue
    return sorted(found, key=lambda r: r.info.get("created", ""), reverse=True)


# lora-gguf --------------------------------------------------------------------------------------

def _export_lora(base, adapter, staging: Path, say: Progress) -> list[str]:
    from assistant.gguf_io import write_lora_gguf

    name = f"{adapter.name}-v{adapter.version}.lora.gguf"
    say("convert", "writing the LoRA as a llama.cpp adapter GGUF")
    write_lora_gguf(adapter.path, staging / name)
    files = [name]
    if base.gguf_path is None:  # an HF base: ship it as a GGUF too, so the adapter has something to sit on
        say("convert", "the base is an HF directory: writing it as an f16 GGUF for the adapter")
        base_name = "base.f16.gguf"
        weights = MergedWeights(base.ensure_hf_dir(progress=False), None)
        write_merged_gguf(weights, staging / base_name, tokenizer_kv(base), {"general.name": base.name},
                          dtype="f16")
        files.append(base_name)
    return files


# merged GGUF ------------------------------------------------------------------------------------

def _export_merged_gguf(base, adapter, fmt: str, staging: Path, say: Progress) -> list[str]:
    quant = QUANT_TYPES[fmt]
    name = f"{adapter.name}-v{adapter.version}.{quant}.gguf"
    hf_dir = base.ensure_hf_dir(progress=False)
    say("merge", "reading the tokenizer")
    kv = tokenizer_kv(base, chat_template=CHAT_TEMPLATES[adapter.prompt_format])
    weights = MergedWeights(hf_dir, adapter.path)
    meta = {"general.name": f"{base.name} + {adapter.name} v{adapter.version}",
            "assistant.adapter": adapter.name, "assistant.adapter_version": str(adapter.version),
            "assistant.prompt_format": adapter.prompt_format, "assistant.base_sha256": base.sha256}
    f16_path = staging / (name if quant == "F16" else f".{name}.f16.tmp")
    write_merged_gguf(weights, f16_path, kv, meta, dtype="f16",
                      on_tensor=lambda i, n: say("merge", f"merged and wrote tensor {i}/{n}") if i % 24 == 0 or i == n else None)
    n_layers = int(weights.config["num_hidden_layers"])
    changed = sorted({gguf_tensor_name(w, n_layers) for w in weights.deltas})
    weights.close()  # drop the memory-mapped base weights before llama.cpp maps the f16 file
    if quant != "F16":
        keep = KEEP_CHANGED.get(quant)
        say("quantize", f"quantizing to {quant} with llama.cpp" + (f" (LoRA-changed matrices at {keep})" if keep else ""))
        quantize_gguf(f16_path, staging / name, quant, keep={t: keep for t in changed} if keep else None)
        f16_path.unlink()
    return [name]


class MergedWeights:
    """The base's HF weights with a LoRA folded in, produced one tensor at a time.

    W' = W + (alpha / r) * B @ A for every LoRA target, as peft's merge does (no rslora/DoRA:
    those are refused). Tensors are read lazily from the safetensors files (memory-mapped).
    """

    def __init__(self, hf_dir: Path, adapter_dir: Path | None):
        from safetensors import safe_open

        self.hf_dir = Path(hf_dir)
        self.config = json.loads((self.hf_dir / "config.json").read_text())
        shards = sorted(self.hf_dir.glob("*.safetensors"))
        if not shards:
            raise ExportError(f"{self.hf_dir} has no .safetensors weights")
        self._where: dict[str, object] = {}
        self._handles = [safe_open(str(p), framework="pt") for p in shards]
        for handle in self._handles:
            for key in handle.keys():
                self._where[key] = handle
        self.deltas: dict[str, tuple] = {}
        self.scale = 0.0
        if adapter_dir is not None:
            self._load_lora(Path(adapter_dir))

    def _load_lora(self, adapter_dir: Path) -> None:
        from safetensors.torch import load_file

        config = json.loads((adapter_dir / "adapter_config.json").read_text())
        _check_lora_config(config)
        if config.get("fan_in_fan_out"):
            raise ExportError("fan_in_fan_out LoRA layouts are not supported for export")
        self.scale = float(config["lora_alpha"]) / float(config["r"])
        pairs: dict[str, dict] = {}
        for key, value in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
            stem = key.removeprefix(PEFT_PREFIX)
            for tag, suffix in (("A", ".lora_A.weight"), ("B", ".lora_B.weight")):
                if stem.endswith(suffix):
                    pairs.setdefault(stem.removesuffix(suffix) + ".weight", {})[tag] = value.float()
                    break
            else:
                raise ExportError(f"unexpected tensor '{key}' in the adapter (only LoRA A/B matrices can be merged)")
        for weight, pair in pairs.items():
            if set(pair) != {"A", "B"}:
                raise ExportError(f"'{weight}' has only one of lora_A/lora_B")
            if weight not in self._where:
                raise ExportError(f"the adapter targets '{weight}', which this base does not have")
            self.deltas[weight] = (pair["A"], pair["B"])

    def names(self) -> list[str]:
        return sorted(self._where)

    def close(self) -> None:
        import gc

        self._where, self._handles = {}, []
        gc.collect()

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def source_dtype(self, name: str) -> str:
        return self._where[name].get_slice(name).get_dtype()  # "F32", "BF16", "F16"

    def tensor(self, name: str):
        """The merged fp32 torch tensor (a fresh one each call; the caller frees it)."""
        import torch

        weight = self._where[name].get_tensor(name).to(torch.float32)
        if name in self.deltas:
            a, b = self.deltas[name]
            weight = weight + self.scale * (b @ a)
        return weight


def write_merged_gguf(weights: MergedWeights, out_path: Path, tokenizer: list, metadata: dict,
                      dtype: str = "f16", on_tensor: Callable[[int, int], None] | None = None) -> Path:
    """A complete Gemma 3 GGUF, streamed: all tensor headers first (from shapes alone), then each
    tensor is merged, converted and written before the next one is read.

    Norm weights are stored as w + 1 (llama.cpp keeps Gemma's 1 + w), in f32; matrices in f16.
    """
    import gguf

    config = weights.config
    n_layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(None, arch="gemma3")
    _add_gemma3_metadata(writer, config)
    for key, value, vtype, sub in tokenizer:
        writer.add_key_value(key, value, vtype, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for key, value in metadata.items():
        if key == "general.name":
            writer.add_name(str(value))
        else:
            writer.add_string(key, str(value))
    plan = []
    for name in weights.names():
        if name == "lm_head.weight" and config.get("tie_word_embeddings", True):
            continue
        target = gguf_tensor_name(name, n_layers)
        shape = weights.shape(name)
        is_norm = "norm" in target
        np_dtype = np.float16 if dtype == "f16" and len(shape) > 1 and not is_norm else np.float32
        writer.add_tensor_info(target, shape, np.dtype(np_dtype), int(np.prod(shape)) * np.dtype(np_dtype).itemsize)
        plan.append((name, is_norm, np_dtype))
    out_path = Path(out_path)
    try:
        writer.write_header_to_file(path=out_path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (name, is_norm, np_dtype) in enumerate(plan, start=1):
            array = weights.tensor(name).numpy()
            if is_norm:
                array = array + 1.0
            writer.write_tensor_data(np.ascontiguousarray(array, dtype=np_dtype))
            del array
            if on_tensor:
                on_tensor(i, len(plan))
        writer.close()
    except BaseException:
        writer.close()
        out_path.unlink(missing_ok=True)
        raise
    return out_path


def quantize_gguf(src: Path, dst: Path, quant: str, keep: dict[str, str] | None = None,
                  threads: int | None = None) -> Path:
    """llama.cpp's own quantizer (llama_model_quantize) on an f16 GGUF; `keep` maps tensor names to
    the type they get instead (e.g. {"blk.0.attn_q.weight": "Q8_0"})."""
    import re

    import llama_cpp

    try:  # llama.cpp logs every tensor at INFO; keep errors only
        from llama_cpp._logger import set_verbose

        set_verbose(False)
    except ImportError:
        pass
    ftype = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
             "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16}[quant]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or int(os.environ.get("ASSISTANT_EXPORT_THREADS") or len(os.sched_getaffinity(0)))
    if keep:
        ggml = {"Q8_0": llama_cpp.GGML_TYPE_Q8_0, "F16": llama_cpp.GGML_TYPE_F16, "Q6_K": llama_cpp.GGML_TYPE_Q6_K}
        items = sorted(keep.items())
        overrides = (llama_cpp.llama_model_tensor_override * (len(items) + 1))()
        patterns = [f"^{re.escape(name)}$".encode() for name, _ in items]  # kept alive until the call returns
        for slot, pattern, (_, kind) in zip(overrides, patterns, items, strict=False):
            slot.pattern, slot.type = pattern, ggml[kind]
        overrides[len(items)].pattern = None  # the list ends at a null pattern
        params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not Path(dst).is_file():
        Path(dst).unlink(missing_ok=True)
        raise ExportError(f"llama.cpp could not quantize the merged model to {quant} (code {rc})")
    return Path(dst)


# tokenizer metadata -----------------------------------------------------------------------------

def tokenizer_kv(base, chat_template: str | None = None) -> list[tuple]:
    """tokenizer.* GGUF keys as (key, value, type, sub_type): from the base GGUF when there is one,
    else from the HF tokenizer; `chat_template` replaces the base's template."""
    import gguf

    if base.gguf_path is not None:
        items = read_gguf_tokenizer(base.gguf_path)
    else:
        items = hf_tokenizer_kv(base.ensure_hf_dir(progress=False))
    items = [item for item in items if item[0] != "tokenizer.chat_template"]
    if chat_template:
        items.append(("tokenizer.chat_template", chat_template, gguf.GGUFValueType.STRING, None))
    return items


def read_gguf_tokenizer(path: Path) -> list[tuple]:
    """The tokenizer.* keys of a GGUF file.

    Our own reader: gguf's GGUFReader maps the whole file and parses every array, ~10 s on the
    embedded base; this reads only the metadata, in well under a second.
    """
    import gguf

    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    numpy_types = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
                   7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}

    def string(fh) -> str:
        (n,) = struct.unpack("<Q", fh.read(8))
        return fh.read(n).decode("utf-8", errors="surrogateescape")

    def value(fh, vtype: int):
        if vtype in scalars:
            fmt = scalars[vtype]
            return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0], None
        if vtype == 8:
            return string(fh), None
        if vtype == 9:
            sub, count = struct.unpack("<IQ", fh.read(12))
            if sub in numpy_types:
                arr = np.frombuffer(fh.read(count * np.dtype(numpy_types[sub]).itemsize), dtype=numpy_types[sub])
                return arr.tolist(), sub
            if sub == 8:
                return [string(fh) for _ in range(count)], sub
            raise ValueError(f"unsupported GGUF array type {sub}")
        raise ValueError(f"unknown GGUF value type {vtype}")

    out = []
    with Path(path).open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ExportError(f"{path} is not a GGUF file")
        _version, _tensors, kv_count = struct.unpack("<IQQ", fh.read(20))
        for _ in range(kv_count):
            key = string(fh)
            (vtype,) = struct.unpack("<I", fh.read(4))
            val, sub = value(fh, vtype)
            if key.startswith("tokenizer."):
                out.append((key, val, gguf.GGUFValueType(vtype), gguf.GGUFValueType(sub) if sub is not None else None))
    return out


def hf_tokenizer_kv(hf_dir: Path) -> list[tuple]:
    """GGUF tokenizer keys for a Gemma 3 HF directory.

    With `tokenizer.model` (how Gemma 3 checkpoints ship) gguf's SentencePieceVocab reads the exact
    pieces and scores. With only `tokenizer.json` (a BPE form of the same SentencePiece model), the
    scores are rebuilt from the merge ranks: llama.cpp's SPM tokenizer merges the adjacent pair whose
    joined piece scores highest, which is the lowest-ranked merge. The export's verification
    compares token ids with transformers, so a tokenizer that disagreed would be caught.
    """
    import gguf

    T = gguf.GGUFValueType
    hf_dir = Path(hf_dir)
    if (hf_dir / "tokenizer.model").is_file():
        vocab = gguf.vocab.SentencePieceVocab(hf_dir)
        tokens, scores, types = zip(*vocab.all_tokens(), strict=True)
        tokens = [t.decode("utf-8", errors="surrogateescape") if isinstance(t, bytes) else t for t in tokens]
    else:
        data = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
        model = data["model"]
        if model.get("type") != "BPE":
            raise ExportError(f"cannot write a llama.cpp tokenizer from {hf_dir} (no tokenizer.model, "
                              f"and tokenizer.json is {model.get('type')}, not BPE)")
        size = max(model["vocab"].values()) + 1
        tokens = [""] * size
        for piece, idx in model["vocab"].items():
            tokens[idx] = piece
        added = {a["id"]: a for a in data.get("added_tokens", [])}
        for idx, token in added.items():  # llama.cpp keeps added tokens as written
            tokens[idx] = token["content"]
        # Gemma's runs of spaces are user-defined pieces in SentencePiece; tokenizer.json has them as
        # ordinary "▁▁…" entries, the GGUF as spaces.
        spaces = {idx for idx, piece in enumerate(tokens) if len(piece) > 1 and set(piece) == {"▁"}}
        for idx in spaces:
            tokens[idx] = " " * len(tokens[idx])
        rank: dict[str, int] = {}
        for i, merge in enumerate(model.get("merges", [])):
            left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
            rank.setdefault(left + right, i)
        floor = -float(len(rank) + 1)
        scores, types = [], []
        for idx, piece in enumerate(tokens):
            if idx in added or idx in spaces:
                scores.append(-1000.0)
                special = idx in added and added[idx].get("special")
                types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                scores.append(0.0)
                types.append(gguf.TokenType.BYTE)
            else:
                scores.append(-float(rank[piece]) if piece in rank else floor)
                types.append(gguf.TokenType.NORMAL)
    special = gguf.vocab.SpecialVocab(hf_dir, load_merges=False, n_vocab=len(tokens))
    items = [("tokenizer.ggml.model", "llama", T.STRING, None), ("tokenizer.ggml.pre", "default", T.STRING, None),
             ("tokenizer.ggml.tokens", list(tokens), T.ARRAY, T.STRING),
             ("tokenizer.ggml.scores", [float(s) for s in scores], T.ARRAY, T.FLOAT32),
             ("tokenizer.ggml.token_type", [int(t) for t in types], T.ARRAY, T.INT32)]
    ids = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "pad": "padding_token_id"}
    for kind, key in ids.items():
        if kind in special.special_token_ids:
            items.append((f"tokenizer.ggml.{key}", int(special.special_token_ids[kind]), T.UINT32, None))
    add = {"bos": True, "eos": False} | {k: bool(v) for k, v in special.add_special_token.items() if k in ("bos", "eos")}
    items += [("tokenizer.ggml.add_bos_token", add["bos"], T.BOOL, None),
              ("tokenizer.ggml.add_eos_token", add["eos"], T.BOOL, None),
              ("tokenizer.ggml.add_space_prefix", False, T.BOOL, None)]
    return items


# hf ---------------------------------------------------------------------------------------------

HF_COPY = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model", "special_tokens_map.json")


def _export_hf(base, adapter, staging: Path, say: Progress) -> list[str]:
    hf_dir = base.ensure_hf_dir(progress=False)
    weights = MergedWeights(hf_dir, adapter.path)
    say("merge", "merging the LoRA into the weights, one tensor at a time")
    write_safetensors_streaming(weights, staging / "model.safetensors")
    files = ["model.safetensors"]
    for name in HF_COPY:
        if (hf_dir / name).is_file():
            shutil.copyfile(hf_dir / name, staging / name)
            files.append(name)
    tok_config = {}
    if (hf_dir / "tokenizer_config.json").is_file():
        tok_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    tok_config.pop("chat_template", None)  # chat_template.jinja below is the one for this adapter
    write_json_atomic(staging / "tokenizer_config.json", tok_config)
    (staging / "chat_template.jinja").write_text(CHAT_TEMPLATES[adapter.prompt_format])
    return files + ["tokenizer_config.json", "chat_template.jinja"]


def write_safetensors_streaming(weights: MergedWeights, out_path: Path) -> Path:
    """A safetensors file written tensor by tensor: the header (names, dtypes, offsets) comes from
    shapes alone, then each merged tensor is written and freed. Keeps each tensor's source dtype."""
    import torch

    torch_dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    header, offset, plan = {}, 0, []
    for name in weights.names():
        dtype = weights.source_dtype(name)
        if dtype not in torch_dtypes:
            raise ExportError(f"cannot export tensor '{name}' of type {dtype}")
        shape = weights.shape(name)
        nbytes = int(np.prod(shape)) * torch_dtypes[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        plan.append((name, torch_dtypes[dtype]))
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with Path(out_path).open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, dtype in plan:
            tensor = weights.tensor(name).to(dtype).contiguous()
            fh.write(tensor.view(torch.uint8).numpy().tobytes() if tensor.dim() else tensor.numpy().tobytes())
            del tensor
    return Path(out_path)


# Modelfile --------------------------------------------------------------------------------------

def modelfile_text(fmt: str, prompt_format: str, files: list[str], base) -> str:
    """An Ollama Modelfile: FROM the model (or the base GGUF + ADAPTER), the template, the stops."""
    get_format(prompt_format)  # an unknown format fails here, not in Ollama
    lines = [f"# Ollama: ollama create <name> -f Modelfile   (prompt format: {prompt_format})"]
    if fmt == "lora-gguf":
        base_ref = f"./{files[1]}" if len(files) > 1 else str(base.gguf_path)
        lines += [f"FROM {base_ref}", f"ADAPTER ./{files[0]}"]
    elif fmt == "hf":
        lines.append("FROM .")
    else:
        lines.append(f"FROM ./{files[0]}")
    lines.append(f'TEMPLATE """{OLLAMA_TEMPLATES[prompt_format]}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in OLLAMA_STOPS[prompt_format]]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"


# verification (in a separate process) -----------------------------------------------------------

def run_verification(base, adapter, fmt: str, export_dir: Path, files: list[str],
                     timeout_s: float = VERIFY_TIMEOUT_S) -> dict:
    """Run assistant.verify_export on the staged export; its JSON result, or a failed one saying why."""
    spec = {"format": fmt, "export_dir": str(export_dir), "files": files,
            "base_hf_dir": str(base.ensure_hf_dir(progress=False)),
            "base_gguf": str(base.gguf_path) if base.gguf_path else None,
            "adapter": {"name": adapter.name, "version": adapter.version, "path": str(adapter.path),
                        "prompt_format": adapter.prompt_format, "manifest": adapter.manifest}}
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "assistant.verify_export", "--spec", str(spec_path), "--out", str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        except subprocess.TimeoutExpired:
            return {"passed": False, "error": f"verification did not finish within {timeout_s:.0f} s"}
        if proc.returncode != 0 or not out_path.is_file():
            lines = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
            return {"passed": False, "error": f"verification crashed: {lines[-1] if lines else f'exit {proc.returncode}'}"}
        return json.loads(out_path.read_text())


# files and faults -------------------------------------------------------------------------------

def _new_staging(out_root: Path, target_name: str) -> Path:
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        sweep_staging(out_root)
        return Path(tempfile.mkdtemp(prefix=f".{target_name}.{os.getpid()}.", suffix=".staging", dir=out_root))
    except OSError as exc:
        raise ExportError(_os_error_message(exc, out_root)) from exc


def sweep_staging(out_root: Path) -> int:
    """Remove staging directories left by exports whose process is gone (killed mid-export)."""
    removed = 0
    for path in Path(out_root).glob(".*.staging"):
        parts = path.name.rsplit(".", 3)  # .<target>.<pid>.<random>.staging
        try:
            pid = int(parts[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished export to its final name, replacing an older export of the same name."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old.staging")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]


def _os_error_message(exc: OSError, out_root: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device while writing the export under {out_root}; nothing was kept"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to the output directory {out_root} ({exc.strerror})"
    return f"export failed writing under {out_root}: {exc.strerror or exc}"
