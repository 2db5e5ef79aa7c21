"""HF weight names -> llama.cpp tensor names, through the `gguf` package's own Gemma 3 map.

model.layers.0.self_attn.q_proj.weight -> blk.0.attn_q.weight. The map is gguf's, not ours, so a
name llama.cpp would not load is refused here rather than written.
"""

from __future__ import annotations

from functools import lru_cache

from assistant.gguf import GGUFExportError


@lru_cache(maxsize=8)
def _name_map(n_layers: int):
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_layers)


def gguf_tensor_name(hf_name: str, n_layers: int) -> str:
    """The llama.cpp name of an HF weight; GGUFExportError when llama.cpp has none for it."""
    mapped = _name_map(n_layers).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise GGUFExportError(f"no llama.cpp tensor for '{hf_name}'")
    return mapped
