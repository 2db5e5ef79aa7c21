"""A GGUF base as an fp32 Hugging Face directory, made once per sha256 into the cache.

Training and the transformers engine need HF weights. transformers reads a GGUF itself
(`from_pretrained(dir, gguf_file=name)`, dequantizing to float: about 60-100 s, the tokenizer
conversion alone about 35 s), so the copy is made once, keyed by the GGUF's sha256, under a file
lock (two processes converting at once would both pay that minute), in a staging directory renamed
into place when complete: a crash mid-conversion never leaves a directory that looks finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from assistant.fsutil import move_into_place, new_staging, sweep_staging


def convert_gguf_to_hf(gguf_path: Path, sha256: str, cache_dir: Path, progress: bool = True) -> Path:
    """Dequantize a GGUF into an fp32 HF directory `cache_dir/hf/<sha256>`, once per sha256."""
    final = cache_dir / "hf" / sha256
    if _complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(final) + ".lock"):
        if _complete(final):
            return final
        sweep_staging(final.parent, ".*", keep_unowned=True)  # conversions killed midway
        staging = new_staging(final.parent, f".{sha256[:12]}")
        try:
            _dequantize_into(gguf_path, staging, progress)
            (staging / "identity.json").write_text(json.dumps({"gguf_sha256": sha256, "source": str(gguf_path)}))
            move_into_place(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "identity.json").is_file()


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
