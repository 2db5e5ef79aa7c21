"""llama.cpp's own quantizer (llama_model_quantize through llama-cpp-python) on an f16 GGUF.

Per-tensor overrides (`keep`) let chosen tensors get another type than the file's: an export keeps
the matrices a LoRA changed at 8 bits inside a Q4_K_M file, because re-quantizing W + B @ A to
4 bits rounds it back onto the base's own 4-bit grid and erases the adapter.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

from assistant.fsutil import replacing
from assistant.gguf import GGUFExportError


def quantize_gguf(src: Path, dst: Path, quant: str, keep: dict[str, str] | None = None,
                  threads: int | None = None) -> Path:
    """llama.cpp's own quantizer (llama_model_quantize) on an f16 GGUF; `keep` maps tensor names to
    the type they get instead (e.g. {"blk.0.attn_q.weight": "Q8_0"})."""
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
    with replacing(dst) as tmp:  # llama.cpp writes as it goes: never a half-quantized file under dst
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise GGUFExportError(f"llama.cpp could not quantize the merged model to {quant} (code {rc})")
    return Path(dst)
