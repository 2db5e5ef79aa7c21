"""A complete Gemma 3 model GGUF: metadata from an HF config, tokenizer keys, tensors streamed.

Streamed: GGUF wants every tensor's header before any data, and the headers need only shapes, so
all headers are written first and then each tensor is produced, converted and written before the
next one is read. Peak memory is about the largest tensor (the 262k x 640 embedding), not the
model: a merged export never holds the whole model.

Gemma's RMSNorm multiplies by (1 + w); llama.cpp stores the (1 + w) itself, so norm weights are
written as w + 1, in f32 (transformers subtracts the 1 again when it loads a GGUF). Matrices are
f16 (or f32 on request). A tied lm_head is not written: llama.cpp reuses the embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.fsutil import replacing
from assistant.gguf.names import gguf_tensor_name
from assistant.gguf.reader import read_tokenizer


class TensorSource(Protocol):
    """What the writer reads a model from (assistant.export_merge.MergedWeights is one)."""

    config: dict  # the HF config.json

    def names(self) -> list[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def tensor(self, name: str): ...  # an fp32 array (numpy, or a CPU torch tensor)


def write_gemma3_gguf(source: TensorSource, out_path: Path, tokenizer: list, metadata: dict,
                      dtype: str = "f16", on_tensor: Callable[[int, int], None] | None = None) -> Path:
    """Write `source` as a Gemma 3 GGUF at `out_path` (atomically); `tokenizer` is a list of
    (key, value, type, sub_type) and `metadata` extra string keys; `on_tensor(i, n)` after each."""
    import gguf

    if dtype not in ("f16", "f32"):
        raise ValueError("dtype must be f16 or f32")
    config = source.config
    n_layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(None, arch="gemma3")
    add_gemma3_metadata(writer, config)
    for key, value, vtype, sub in tokenizer:
        writer.add_key_value(key, value, vtype, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for key, value in metadata.items():
        if key == "general.name":
            writer.add_name(str(value))
        else:
            writer.add_string(key, str(value))
    plan = []
    for name in source.names():
        if name == "lm_head.weight" and config.get("tie_word_embeddings", True):
            continue
        target = gguf_tensor_name(name, n_layers)
        shape = source.shape(name)
        is_norm = "norm" in target
        np_dtype = np.float16 if dtype == "f16" and len(shape) > 1 and not is_norm else np.float32
        writer.add_tensor_info(target, shape, np.dtype(np_dtype), int(np.prod(shape)) * np.dtype(np_dtype).itemsize)
        plan.append((name, is_norm, np_dtype))
    with replacing(out_path) as tmp:
        try:
            writer.write_header_to_file(path=tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for i, (name, is_norm, np_dtype) in enumerate(plan, start=1):
                array = np.asarray(source.tensor(name), dtype=np.float32)
                if is_norm:
                    array = array + 1.0
                writer.write_tensor_data(np.ascontiguousarray(array, dtype=np_dtype))
                del array
                if on_tensor:
                    on_tensor(i, len(plan))
        finally:
            writer.close()
    return Path(out_path)


def write_model_gguf(config: dict, tensors: Iterable[tuple[str, np.ndarray]], out_path: Path,
                     tokenizer_gguf: Path, dtype: str = "f16", extra_metadata: dict | None = None) -> Path:
    """A Gemma 3 GGUF from an HF config and (name, array) pairs already in memory, with the
    tokenizer of another GGUF (the tests' tiny model takes the embedded base's)."""
    source = _Arrays(config, dict(tensors))
    return write_gemma3_gguf(source, out_path, read_tokenizer(tokenizer_gguf), extra_metadata or {}, dtype=dtype)


class _Arrays:
    """A TensorSource over arrays held in memory, in their given order."""

    def __init__(self, config: dict, arrays: dict):
        self.config, self._arrays = config, arrays

    def names(self) -> list[str]:
        return list(self._arrays)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(np.shape(self._arrays[name]))

    def tensor(self, name: str):
        return self._arrays[name]


def add_gemma3_metadata(writer, config: dict) -> None:
    """The gemma3.* hyperparameters llama.cpp needs, from an HF config."""
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
