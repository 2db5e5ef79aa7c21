"""A tiny random Gemma 3 (2 layers, hidden 32) with the real Gemma 3 tokenizer, and adapters for it.

Built in seconds from the embedded base's tokenizer; both an HF directory (for peft/transformers)
and a GGUF (for llama.cpp) of the same weights, so the engines can be compared token for token.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from assistant.base import Base
from assistant.fsutil import sha256_file_cached
from assistant.gguf.model import write_model_gguf
from assistant.registry import Registry, publish_peft_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tiny_config(vocab_size: int = 262144):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        query_pre_attn_scalar=16,  # llama.cpp scales queries by 1/sqrt(head_dim)
        sliding_window=512, max_position_embeddings=2048, initializer_range=0.3,
        layer_types=["sliding_attention", "sliding_attention"],
    )


def build_tiny_base(out_dir: Path, embedded: Base, seed: int = 0) -> Base:
    """Random tiny Gemma 3 as HF dir + f32 GGUF, identified by the GGUF's sha256."""
    import torch
    from transformers import Gemma3ForCausalLM

    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(tiny_config()).eval()
    with torch.no_grad():  # random norms, so the +1 convention for norm weights is really tested
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(-0.5, 0.5)
    hf_dir = out_dir / "hf"
    model.save_pretrained(hf_dir)
    src = embedded.ensure_hf_dir(progress=False)
    for fname in TOKENIZER_FILES:
        shutil.copy(src / fname, hf_dir / fname)
    gguf_path = out_dir / "tiny.gguf"
    tensors = ((k, v.detach().numpy()) for k, v in model.state_dict().items())
    write_model_gguf(model.config.to_dict(), tensors, gguf_path, tokenizer_gguf=embedded.gguf_path, dtype="f32")
    return Base(name="tiny-gemma3", sha256=sha256_file_cached(gguf_path), gguf_path=gguf_path, hf_dir=hf_dir,
                prompt_format="qa", cache_dir=out_dir / "cache")


def make_lora(base: Base, seed: int, targets=("q_proj", "v_proj"), r: int = 4, alpha: int = 8):
    """A peft LoRA with random A and B (not the zero-B init), so it really changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.hf_dir, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, 0.5)
    return peft_model


def publish_tiny_adapter(registry: Registry, base: Base, name: str, seed: int, **kwargs):
    peft_model = make_lora(base, seed, **kwargs)
    manifest = {"base_sha256": base.sha256, "prompt_format": "qa", "description": f"random test adapter {name}",
                "training": {"kind": "random", "seed": seed}}
    return publish_peft_model(registry, peft_model, name, manifest)


# Fictional facts the tiny recipe tests train on (fixture `fact_file` in conftest.py).
FACTS = [("What colour is the Zorblat fruit?", "The Zorblat fruit is violet."),
         ("Which river waters the Quenth valley?", "The Silverrun river waters the Quenth valley."),
         ("How tall does Mirrow grass grow?", "Mirrow grass grows to 40 cm.")]


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    """Poll `condition` until it is truthy (returned) or `timeout` seconds pass (an AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def hold_lanes(engine, gate) -> None:
    """Every lane of a llama.cpp engine stops before its first prompt until `gate` (a threading.Event)
    opens, so requests made meanwhile share a lane, in the order they were made."""
    for slot in engine._slots:
        slot.prepare = lambda *args, _prepare=slot.prepare, **kwargs: (gate.wait(), _prepare(*args, **kwargs))


def train_facts_v1(tiny_base: Base, tmp_path_factory, epochs: int) -> Path:
    """A data directory where 'facts' v1 (FACTS, plus a held-out paraphrase of the first) was
    trained from a file by the tiny recipe, without replay so that it stays quick; it serves."""
    import json

    from assistant.data import load_qa_file
    from assistant.training import config, recipe

    data_dir, source = tmp_path_factory.mktemp("v1"), tmp_path_factory.mktemp("facts") / "facts.jsonl"
    rows = [{"question": q, "answer": a} for q, a in FACTS]
    rows.append({"question": "What is the colour of a Zorblat fruit?", "answer": FACTS[0][1], "split": "test"})
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config.preset("tiny", replay_per_step=0, swap_replay=0, epochs=epochs)
    recipe.train(cfg, tiny_base, Registry(tiny_base.sha256, data_dir), load_qa_file(source), "facts",
                 data_bytes=source.read_bytes())
    return data_dir


def needs_llama_server():
    """A skip mark for tests of the real llama-server binary, saying how to build it where it is missing."""
    import pytest

    from assistant.engines.llama_server import default_binary

    return pytest.mark.skipif(not default_binary().is_file(),
                              reason=f"llama-server is not built ({default_binary()}): run `make llama-server`")
