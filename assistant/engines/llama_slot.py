"""One llama.cpp context of the engine's (assistant.engines.llamacpp): its KV cache, the tokens it
holds, its adapter set, its thread count, and how a prompt and draft tokens are evaluated in it."""

from __future__ import annotations

import ctypes

from assistant.engines import EngineError, llama_private


class Slot:
    """One llama.cpp context: its KV cache, its token history, its active adapter."""

    def __init__(self, engine, index: int, n_ctx: int):
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        for name in ("n_batch", "n_ubatch", "rope_scaling_type", "rope_freq_base", "rope_freq_scale", "flash_attn_type",
                     "type_k", "type_v"):
            if hasattr(engine.llm.context_params, name):
                setattr(params, name, getattr(engine.llm.context_params, name))
        params.n_ctx = n_ctx
        params.n_threads = params.n_threads_batch = engine.threads
        self.index = index
        self.ctx = llama_private.new_context(engine.llm, params)
        self.n_batch = params.n_batch
        self.batch = llama_private.new_batch(self.n_batch)
        self.tokens: list[int] = []  # what the KV cache holds
        self.adapter: str | None = None
        self.threads = engine.threads

    def n_ctx(self) -> int:
        return self.ctx.n_ctx()

    def set_adapter(self, key: str | None, handle) -> bool:
        """Make `key` this slot's adapter; True when that changed anything."""
        import llama_cpp

        if key == self.adapter:
            return False
        if key is None:
            rc = llama_cpp.llama_set_adapters_lora(self.ctx.ctx, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(1.0)
            rc = llama_cpp.llama_set_adapters_lora(self.ctx.ctx, handles, 1, scales)
        if rc != 0:
            raise EngineError(f"llama.cpp refused to switch to adapter {key} (code {rc})")
        self.forget()
        self.adapter = key
        return True

    def forget(self) -> None:
        self.ctx.kv_cache_clear()
        self.tokens = []

    def set_threads(self, n: int) -> None:
        if n != self.threads:
            self.ctx.set_n_threads(n, n)
            self.threads = n

    def evaluate(self, tokens: list[int], every_logit: bool = False) -> None:
        """Feed `tokens` after what the cache holds; the last one's logits are then readable (with
        `every_logit`, each token's, by its index in `tokens`: `tokens` must then fit one batch)."""
        if every_logit and len(tokens) > self.n_batch:
            raise ValueError(f"{len(tokens)} tokens do not fit one batch of {self.n_batch}")
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self.batch.set_batch(chunk, n_past=len(self.tokens), logits_all=every_logit)
            try:
                self.ctx.decode(self.batch)
            except RuntimeError as exc:
                self.forget()
                raise EngineError(f"llama.cpp could not evaluate the prompt: {exc}") from exc
            self.tokens += chunk

    def drop_after(self, n: int) -> None:
        """Forget every cached token after the first `n` (draft tokens the model did not confirm)."""
        if n < len(self.tokens):
            self.ctx.kv_cache_seq_rm(0, n, -1)
            del self.tokens[n:]

    def prepare(self, prompt: list[int]) -> None:
        """Evaluate the whole of `prompt` afresh.

        Reusing a cached prefix would save its evaluation, but the same prompt evaluated in other
        batches gives other rounding, and a greedy answer then drifts: "Why do farmers rotate
        crops?" answered 281 characters after another question and 296 when asked again (real
        base, 64 tokens). The same question must always get the same answer at temperature 0.
        """
        self.forget()
        self.evaluate(list(prompt))

    def logits(self):
        """The next-token logits after the last evaluated token (a numpy copy)."""
        import numpy as np

        n_vocab = self.ctx.model.n_vocab()
        return np.ctypeslib.as_array(self.ctx.get_logits_ith(-1), shape=(n_vocab,)).copy()
