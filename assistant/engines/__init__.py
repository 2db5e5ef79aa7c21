"""Inference engines behind one narrow, token-level interface.

    engine.load_adapter(adapter)            # once per adapter version; cheap to call again
    engine.unload_adapter(key)
    engine.tokenize(text) -> list[int]; engine.detokenize(ids) -> str
    engine.generate_ids(prompt_ids, adapter, settings) -> Iterator[int]  # greedy/sampled token ids

`adapter` is a registry `Adapter` or None for the bare base. Engines know nothing of
conversations, prompt formats' meaning, grounding or labels: the answer service (assistant.service,
assistant.answer) renders the prompt, cuts the answer at its stops and labels it. The interface is
narrow on purpose: the server engines speak to a multi-LoRA server (llama-server, vLLM)
through the same calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from assistant.prompts import PromptFormat

if TYPE_CHECKING:
    from assistant.registry import Adapter

ENGINES = ("llamacpp", "hf", "llama-server", "server")
SERVER_KINDS = ("llama-server", "vllm")  # what `--engine server` can speak to


class EngineError(Exception):
    """The engine cannot do what was asked; the message is for the user."""


@dataclass
class GenerationSettings:
    """Sampling knobs shared by every engine."""

    max_tokens: int = 256  # new tokens at most
    temperature: float = 0.0  # 0 means greedy, which makes answers reproducible
    top_p: float = 0.95  # nucleus sampling, used only when temperature > 0
    top_k: int = 64  # Gemma 3's recommended top-k, used only when temperature > 0
    seed: int = 0  # sampling seed, so a sampled answer can be reproduced

    def __post_init__(self):
        if not 1 <= int(self.max_tokens) <= 4096:
            raise ValueError(f"max_tokens must be between 1 and 4096, not {self.max_tokens}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError(f"temperature must be between 0 and 2, not {self.temperature}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        self.max_tokens, self.temperature, self.top_p = int(self.max_tokens), float(self.temperature), float(self.top_p)
        self.top_k, self.seed = int(self.top_k), int(self.seed)


class Engine(Protocol):
    name: str
    prompt_format: PromptFormat

    def load_adapter(self, adapter: Adapter) -> None: ...
    def unload_adapter(self, key: str) -> None: ...
    def generate_ids(self, prompt_ids: list[int], adapter: Adapter | None,
                     settings: GenerationSettings) -> Iterator[int]: ...
    def tokenize(self, text: str) -> list[int]: ...
    def detokenize(self, ids: list[int]) -> str: ...


def create_engine(name: str, base, adapters=(), **options) -> Engine:
    """Build the named engine over a resolved Base. `adapters`: the registry's adapters, for an
    engine that must know them before it starts (llama-server loads its LoRAs at start only)."""
    if name == "llamacpp":
        from assistant.engines.llamacpp import LlamaCppEngine

        if base.gguf_path is None:
            raise EngineError("the llama.cpp engine needs a GGUF base; pass a .gguf file with --base, "
                              "or use --engine hf for a Hugging Face directory")
        return LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format, **options)
    if name == "hf":
        from assistant.engines.hf import HFEngine

        return HFEngine(base.ensure_hf_dir(), prompt_format=base.prompt_format, **options)
    if name == "llama-server":
        from assistant.engines.llama_server import LlamaServer
        from assistant.engines.server import ServerEngine

        if base.gguf_path is None:
            raise EngineError("llama-server needs a GGUF base; pass a .gguf file with --base")
        server = LlamaServer(base.gguf_path, list(adapters),
                             **{k: v for k, v in options.items() if k in ("parallel", "threads", "n_ctx")}).start()
        return ServerEngine(server, prompt_format=base.prompt_format, owns_server=True)
    if name == "server":
        from assistant.engines.remote import connect

        return connect(options.get("server_url"), options.get("server_kind") or "llama-server", base, adapters,
                       path_map=options.get("server_path_map"))
    raise EngineError(f"unknown engine '{name}' (choose from: {', '.join(ENGINES)})")
