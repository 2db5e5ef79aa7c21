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
This module is the orchestration; the pieces are assistant.export_merge (the merge, streamed one
tensor at a time), assistant.gguf (GGUF writing and quantizing), assistant.export_modelfile
(templates, Modelfile) and assistant.export_verify (the check, in its own process).

Safety: everything is built in a hidden staging directory beside the target
(`.<target>-<pid>-<random>.staging`, assistant.fsutil), `export.json` is written last and the
directory renamed into place at the end, so a crash or a kill never leaves a half-written file under
a final name; the next export sweeps what a killed one left.
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.export_merge import MergedWeights, write_safetensors_streaming
from assistant.export_modelfile import CHAT_TEMPLATES, modelfile_text
from assistant.fsutil import move_into_place, new_staging, sha256_file, sweep_staging, write_json_atomic
from assistant.gguf import GGUFExportError, GGUFReadError
from assistant.gguf.lora import write_lora_gguf
from assistant.gguf.model import write_gemma3_gguf
from assistant.gguf.names import gguf_tensor_name
from assistant.gguf.quantize import quantize_gguf
from assistant.gguf.tokenizer import tokenizer_kv

FORMATS = ("lora-gguf", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "hf")
QUANT_TYPES = {"gguf-f16": "F16", "gguf-q8_0": "Q8_0", "gguf-q4_k_m": "Q4_K_M"}
EXPORT_JSON = "export.json"
MODELFILE = "Modelfile"
STAGING_SUFFIX = ".staging"
# Re-quantizing to 4 bits erases a LoRA: the base was itself Q4_K_M, so W + scale * B @ A rounds
# back onto W's 4-bit grid. Measured on xylandia: recall 100% -> 0% with every tensor at Q4_K_M.
# The matrices the LoRA changed are therefore kept at 8 bits; the rest is Q4_K_M as usual.
KEEP_CHANGED = {"Q4_K_M": "Q8_0"}

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
            from assistant.export_verify import run_verification

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
        move_into_place(staging, target)
    except OSError as exc:
        raise ExportError(_os_error_message(exc, out_root)) from exc
    except (GGUFExportError, GGUFReadError) as exc:
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
    name = f"{adapter.name}-v{adapter.version}.lora.gguf"
    say("convert", "writing the LoRA as a llama.cpp adapter GGUF")
    write_lora_gguf(adapter.path, staging / name)
    files = [name]
    if base.gguf_path is None:  # an HF base: ship it as a GGUF too, so the adapter has something to sit on
        say("convert", "the base is an HF directory: writing it as an f16 GGUF for the adapter")
        base_name = "base.f16.gguf"
        weights = MergedWeights(base.ensure_hf_dir(progress=False), None)
        write_gemma3_gguf(weights, staging / base_name, tokenizer_kv(base), {"general.name": base.name},
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
    write_gemma3_gguf(weights, f16_path, kv, meta, dtype="f16",
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


# files and faults -------------------------------------------------------------------------------

def _new_staging(out_root: Path, target_name: str) -> Path:
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        sweep_staging(out_root, f".*{STAGING_SUFFIX}", keep_unowned=True)  # exports killed midway
        return new_staging(out_root, f".{target_name}", STAGING_SUFFIX)
    except OSError as exc:
        raise ExportError(_os_error_message(exc, out_root)) from exc


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]


def _os_error_message(exc: OSError, out_root: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device while writing the export under {out_root}; nothing was kept"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to the output directory {out_root} ({exc.strerror})"
    return f"export failed writing under {out_root}: {exc.strerror or exc}"
