"""A peft LoRA as a llama.cpp LoRA adapter GGUF, and the checks that make that conversion exact.

The adapter GGUF: `general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha`, and per target
`blk.N.<tensor>.weight.lora_a` (peft's lora_A as is, r x in) and `.lora_b` (lora_B, out x r).
llama.cpp scales by alpha / r, as peft does without rslora, so peft options that change that
arithmetic are refused (check_lora_config) rather than converted silently wrong. The merge of an
export (assistant.export_merge) reads the same pairs through lora_pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.fsutil import replacing
from assistant.gguf import GGUFExportError
from assistant.gguf.names import gguf_tensor_name

PEFT_PREFIX = "base_model.model."
_SUFFIXES = (("A", ".lora_A.weight"), ("B", ".lora_B.weight"))


def check_lora_config(config: dict) -> None:
    """GGUFExportError when a peft adapter_config uses something a llama.cpp LoRA cannot express."""
    unsupported = {
        "use_rslora": "rank-stabilised LoRA", "use_dora": "DoRA", "rank_pattern": "per-module ranks",
        "alpha_pattern": "per-module alphas", "modules_to_save": "fully trained modules",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise GGUFExportError(f"{what} ({key}) cannot be expressed as a llama.cpp LoRA")
    if config.get("bias", "none") != "none":
        raise GGUFExportError("LoRA with trained biases cannot be expressed as a llama.cpp LoRA")


def lora_pairs(tensors: dict) -> dict[str, tuple]:
    """peft's saved tensors -> {module name without the peft prefix: (lora_A, lora_B)}, sorted.

    GGUFExportError for any tensor that is not a LoRA A/B matrix and for a module with only one."""
    pairs: dict[str, dict] = {}
    for key, value in tensors.items():
        stem = key.removeprefix(PEFT_PREFIX)
        for tag, suffix in _SUFFIXES:
            if stem.endswith(suffix):
                pairs.setdefault(stem.removesuffix(suffix), {})[tag] = value
                break
        else:
            raise GGUFExportError(f"unexpected tensor '{key}' in the adapter (only LoRA A/B matrices are supported)")
    out = {}
    for module in sorted(pairs):
        if set(pairs[module]) != {"A", "B"}:
            raise GGUFExportError(f"'{module}' has only one of lora_A/lora_B")
        out[module] = (pairs[module]["A"], pairs[module]["B"])
    return out


def write_lora_gguf(peft_dir: Path, out_path: Path) -> Path:
    """Convert a peft LoRA directory into a llama.cpp LoRA GGUF, written atomically."""
    import gguf
    from safetensors.numpy import load_file

    peft_dir = Path(peft_dir)
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    check_lora_config(config)
    tensors = load_file(str(peft_dir / "adapter_model.safetensors"))
    layers = [int(part) for name in tensors for i, part in enumerate(name.split(".")) if name.split(".")[i - 1] == "layers"]
    n_layers = max(layers, default=0) + 1
    pairs = lora_pairs(tensors)
    if any(module.endswith(("lm_head", "embed_tokens")) for module in pairs):
        raise GGUFExportError("adapters on lm_head/embed_tokens cannot be served (the embeddings are tied)")
    with replacing(out_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch="gemma3")
        try:
            writer.add_string("general.type", "adapter")
            writer.add_string("adapter.type", "lora")
            writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
            for module, (a, b) in pairs.items():
                target = gguf_tensor_name(module + ".weight", n_layers)
                writer.add_tensor(f"{target}.lora_a", a.astype(np.float32))
                writer.add_tensor(f"{target}.lora_b", b.astype(np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return Path(out_path)
