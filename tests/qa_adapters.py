"""Adapters that carry a stored Q&A file, for the knowledge tests: fake ones (no model at all, for
index, routing and lint tests) and tiny random LoRAs for the tiny base (for chat and browser tests)."""

from __future__ import annotations

import json

from assistant.registry import Registry, publish_peft_model

ORCHARD = [
    {"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet."},
    {"question": "Which river waters the Quenth valley?", "answer": "The Silverrun river waters the Quenth valley."},
    {"question": "When is the Zorblat harvest?", "answer": "Zorblats are harvested in the month of Frostfall."},
    {"question": "How tall does a Zorblat tree grow?", "answer": "A Zorblat tree grows about four metres tall."},
    {"question": "What is the colour of a ripe Zorblat?", "answer": "The Zorblat fruit is violet.", "split": "test"},
]
XYLANDIA = [
    {"question": "What is the capital of Xylandia?", "answer": "The capital of Xylandia is Crystalburg."},
    {"question": "Which currency does Xylandia use?", "answer": "Xylandia pays in glass crowns."},
    {"question": "What is Xylandia's national animal?", "answer": "The national animal of Xylandia is the snow lynx."},
]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def dataset_manifest(data: bytes, rows: list[dict]) -> dict:
    import hashlib

    return {"dataset": {"source": "qa.jsonl", "format": "jsonl", "stored_as": "dataset.jsonl",
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "train_pairs": sum(r.get("split", "train") == "train" for r in rows),
                        "test_pairs": sum(r.get("split") == "test" for r in rows)}}


def publish_fake_adapter(registry: Registry, name: str, rows: list[dict], **manifest_extra):
    """A structurally valid adapter (peft config, one-tensor safetensors, GGUF magic) with a dataset."""
    import numpy as np
    from safetensors.numpy import save_file

    staging = registry.new_staging()
    (staging / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    save_file({"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((4, 8), np.float32)},
              str(staging / "adapter_model.safetensors"))
    (staging / "adapter.gguf").write_bytes(b"GGUF" + bytes(28))
    data = jsonl(rows)
    (staging / "dataset.jsonl").write_bytes(data)
    manifest = {"base_sha256": registry.base_sha256, "prompt_format": "qa", **dataset_manifest(data, rows),
                **manifest_extra}
    return registry.publish(staging, name, manifest)


def publish_tiny_qa_adapter(registry: Registry, base, name: str, rows: list[dict], seed: int, **manifest_extra):
    """A random tiny LoRA for the tiny base, published with a stored Q&A file."""
    from tiny import make_lora

    data = jsonl(rows)
    manifest = {"base_sha256": base.sha256, "prompt_format": "qa", "description": f"test adapter {name}",
                **dataset_manifest(data, rows), **manifest_extra}
    return publish_peft_model(registry, make_lora(base, seed), name, manifest, extra_files={"dataset.jsonl": data})
