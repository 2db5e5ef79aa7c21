"""Writing GGUF files for llama.cpp: LoRA adapters, and whole Gemma 3 models.

LoRA: `adapter.type=lora`, `adapter.lora.alpha`, and per target `blk.N.<tensor>.weight.lora_a`
(peft's lora_A, r x in) and `.lora_b` (lora_B, out x r). llama.cpp scales by alpha / r, as peft does
without rslora, so peft options that change that arithmetic are refused rather than silently wrong.

Models: Gemma 3 metadata from an HF config, the tokenizer copied from a source GGUF (the embedded
base), tensors renamed through gguf's own name map. Gemma's RMSNorm multiplies by (1 + w); llama.cpp
stores the (1 + w) itself, so norm weights are written as w + 1 (transformers subtracts 1 on load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PEFT_PREFIX = "base_model.model."


class GGUFExportError(Exception):
    """The conversion cannot be done faithfully; the message says why."""


def _name_map(n_layers: int):
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_layers)


def gguf_tensor_name(hf_name: str, n_layers: int) -> str:
    """HF weight name (model.layers.0.self_attn.q_proj.weight) -> GGUF name (blk.0.attn_q.weight)."""
    mapped = _name_map(n_layers).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise GGUFExportError(f"no llama.cpp tensor for '{hf_name}'")
    return mapped


def write_lora_gguf(peft_dir: Path, out_path: Path) -> Path:
    """Convert a peft LoRA directory into a llama.cpp LoRA GGUF, written atomically."""
    import gguf
    from safetensors.numpy import load_file

    peft_dir = Path(peft_dir)
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    _check_lora_config(config)
    tensors = load_file(str(peft_dir / "adapter_model.safetensors"))
    layers = [int(part) for name in tensors for i, part in enumerate(name.split(".")) if name.split(".")[i - 1] == "layers"]
    n_layers = max(layers, default=0) + 1
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        stem = name.removeprefix(PEFT_PREFIX)
        for tag, suffix in (("a", ".lora_A.weight"), ("b", ".lora_B.weight")):
            if stem.endswith(suffix):
                module = stem.removesuffix(suffix)
                if module.endswith(("lm_head", "embed_tokens")):
                    raise GGUFExportError("adapters on lm_head/embed_tokens cannot be served (the embeddings are tied)")
                pairs.setdefault(module, {})[tag] = value
                break
        else:
            raise GGUFExportError(f"unexpected tensor '{name}' in the adapter (only LoRA A/B matrices are supported)")
    writer = gguf.GGUFWriter(str(_tmp(out_path)), arch="gemma3")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for module in sorted(pairs):
        if set(pairs[module]) != {"a", "b"}:
            raise GGUFExportError(f"'{module}' has only one of lora_A/lora_B")
        target = gguf_tensor_name(module + ".weight", n_layers)
        writer.add_tensor(f"{target}.lora_a", pairs[module]["a"].astype(np.float32))
        writer.add_tensor(f"{target}.lora_b", pairs[module]["b"].astype(np.float32))
    _finish(writer, out_path)
    return out_path


def _check_lora_config(config: dict) -> None:
    unsupported = {
        "use_rslora": "rank-stabilised LoRA", "use_dora": "DoRA", "rank_pattern": "per-module ranks",
        "alpha_pattern": "per-module alphas", "modules_to_save": "fully trained modules",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise GGUFExportError(f"{what} ({key}) cannot be expressed as a llama.cpp LoRA")
    if config.get("bias", "none") != "none":
        raise GGUFExportError("LoRA with trained biases cannot be expressed as a llama.cpp LoRA")


def write_model_gguf(config: dict, tensors: Iterable[tuple[str, np.ndarray]], out_path: Path,
                     tokenizer_gguf: Path, dtype: str = "f16", extra_metadata: dict | None = None) -> Path:
    """A complete Gemma 3 GGUF from an HF config and (name, array) pairs, streamed to disk.

    `tensors` may be a generator: each array is written as soon as it is produced, so peak memory
    stays near one tensor, not the whole model.
    """
    import gguf

    if dtype not in ("f16", "f32"):
        raise ValueError("dtype must be f16 or f32")
    n_layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(_tmp(out_path)), arch="gemma3", use_temp_file=False)
    _add_gemma3_metadata(writer, config)
    copy_tokenizer_metadata(writer, tokenizer_gguf)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for key, value in (extra_metadata or {}).items():
        writer.add_string(key, str(value))
    # Two passes: GGUF wants every tensor's header before any data, so names/shapes come first.
    staged = []
    for name, array in tensors:
        if name == "lm_head.weight" and config.get("tie_word_embeddings", True):
            continue
        target = gguf_tensor_name(name, n_layers)
        array = np.asarray(array, dtype=np.float32)
        if "norm" in target:
            array = array + 1.0
        else:
            array = array.astype(np.float16 if dtype == "f16" and array.ndim > 1 else np.float32)
        if "norm" in target:
            array = array.astype(np.float32)
        staged.append((target, array))
    for target, array in staged:
        writer.add_tensor(target, array)
    _finish(writer, out_path)
    return out_path


def _add_gemma3_metadata(writer, config: dict) -> None:
    head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    writer.add_name(str(config.get("_name_or_path") or "gemma3"))
    writer.add_context_length(int(config.get("max_position_embeddings", 32768)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads", config["num_attention_heads"])))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    rope = config.get("rope_parameters") or {}
    full = rope.get("full_attention", rope) if isinstance(rope, dict) else {}
    theta = full.get("rope_theta") or config.get("rope_theta") or 1_000_000.0
    writer.add_rope_freq_base(float(theta))
    if full.get("rope_type") == "linear" and full.get("factor"):
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(full["factor"]))
    if config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))


def copy_tokenizer_metadata(writer, source_gguf: Path) -> None:
    """Copy every tokenizer.* key (vocabulary, scores, special ids, template) from another GGUF."""
    import gguf

    reader = gguf.GGUFReader(str(source_gguf))
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def _tmp(out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path.with_name(f".{out_path.name}.{os.getpid()}.part")


def _finish(writer, out_path: Path) -> None:
    """Write header, metadata and tensors to the temporary name, then rename: never a partial file."""
    tmp = Path(writer.path) if writer.path else _tmp(out_path)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
