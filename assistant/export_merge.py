"""The base's HF weights with a LoRA folded in, one tensor at a time, and a streamed safetensors
writer for them (the `hf` export; assistant.gguf.model writes the GGUF exports from the same source).

Memory: a tensor is read (memory-mapped), merged (W + scale * B @ A), written and freed before the
next one, so peak memory is about the largest tensor (the 262k x 640 embedding), not the model: the
naive merge of the 270M model in fp32 peaked at 5.3 GB.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from assistant.fsutil import replacing
from assistant.gguf import GGUFExportError
from assistant.gguf.lora import check_lora_config, lora_pairs


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
            raise GGUFExportError(f"{self.hf_dir} has no .safetensors weights")
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
        check_lora_config(config)
        if config.get("fan_in_fan_out"):
            raise GGUFExportError("fan_in_fan_out LoRA layouts are not supported for export")
        self.scale = float(config["lora_alpha"]) / float(config["r"])
        tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
        for module, (a, b) in lora_pairs(tensors).items():
            weight = module + ".weight"
            if weight not in self._where:
                raise GGUFExportError(f"the adapter targets '{weight}', which this base does not have")
            self.deltas[weight] = (a.float(), b.float())

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


def write_safetensors_streaming(weights: MergedWeights, out_path: Path) -> Path:
    """A safetensors file written tensor by tensor: the header (names, dtypes, offsets) comes from
    shapes alone, then each merged tensor is written and freed. Keeps each tensor's source dtype."""
    import torch

    torch_dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    header, offset, plan = {}, 0, []
    for name in weights.names():
        dtype = weights.source_dtype(name)
        if dtype not in torch_dtypes:
            raise GGUFExportError(f"cannot export tensor '{name}' of type {dtype}")
        shape = weights.shape(name)
        nbytes = int(np.prod(shape)) * torch_dtypes[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        plan.append((name, torch_dtypes[dtype]))
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with replacing(out_path) as tmp, tmp.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, dtype in plan:
            tensor = weights.tensor(name).to(dtype).contiguous()
            fh.write(tensor.view(torch.uint8).numpy().tobytes() if tensor.dim() else tensor.numpy().tobytes())
            del tensor
    return Path(out_path)
