"""One llama.cpp context of the engine's (assistant.engines.llamacpp): its KV cache, the sequences it
holds (one per chat decoding in it), its adapter set, its thread count, and how prompts, draft
tokens and a batch of several sequences' next tokens are evaluated in it."""

from __future__ import annotations

import ctypes

from assistant.engines import EngineError, llama_private


class Slot:
    """One llama.cpp context with `n_seq` sequences, each its own chat's KV stream, one adapter for all.

    llama.cpp keeps one KV stream per sequence (`kv_unified` off, its default), each of `n_ctx`
    tokens here, so a chat's attention never sees another's tokens and a batch of several
    sequences' next tokens is one `llama_decode` call: the weights are read once for all of them.
    """

    def __init__(self, engine, index: int, n_ctx: int, n_seq: int = 1):
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        for name in ("n_batch", "n_ubatch", "rope_scaling_type", "rope_freq_base", "rope_freq_scale", "flash_attn_type",
                     "type_k", "type_v"):
            if hasattr(engine.llm.context_params, name):
                setattr(params, name, getattr(engine.llm.context_params, name))
        params.n_ctx = n_ctx * n_seq  # llama.cpp gives each sequence's stream n_ctx / n_seq_max
        params.n_seq_max = n_seq
        # Gemma 3's sliding-window layers (5 in 6) need only the window's tokens, not the whole
        # context: a full-size cache for them made the engine ~320 MB bigger with 7 sequences a
        # context (1135 vs 818 MB resident after 8 chats; 426 MB with one sequence a context), measured.
        params.swa_full = False
        params.n_threads = params.n_threads_batch = engine.threads
        self.index = index
        self.n_seq = n_seq
        self._n_ctx = n_ctx
        self.ctx = llama_private.new_context(engine.llm, params)
        self.n_batch = params.n_batch
        self.batch = llama_private.new_batch(self.n_batch, n_seq)
        self.tokens: dict[int, list[int]] = {seq: [] for seq in range(n_seq)}  # what each stream holds
        self.adapter: str | None = None
        self.threads = self.batch_threads = engine.threads

    def n_ctx(self) -> int:
        """Tokens one sequence may hold."""
        return self._n_ctx

    def set_adapter(self, key: str | None, handle) -> bool:
        """Make `key` this context's adapter (for every sequence); True when that changed anything."""
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

    def forget(self, seq: int | None = None) -> None:
        """Clear one sequence's stream, or (None) every one."""
        if seq is None:
            self.ctx.kv_cache_clear()
            self.tokens = {s: [] for s in range(self.n_seq)}
        else:
            self.ctx.kv_cache_seq_rm(seq, -1, -1)
            self.tokens[seq] = []

    def set_threads(self, n: int, batch: int) -> None:
        """`n` threads for a one-token step, `batch` for anything longer (a prompt, a draft, a batch
        of chats): a prompt has work enough for every core it may have even where one token is
        faster on one thread (engines.threads); 22 prompt tokens took 57 instead of 44 ms on one."""
        if (n, batch) != (self.threads, self.batch_threads):
            self.ctx.set_n_threads(n, batch)
            self.threads, self.batch_threads = n, batch

    def evaluate(self, tokens: list[int], every_logit: bool = False, seq: int = 0) -> None:
        """Feed `tokens` after what sequence `seq` holds, alone in the batch; the last one's logits
        are then readable (with `every_logit`, each token's, by its index in `tokens`: `tokens` must
        then fit one batch)."""
        if every_logit and len(tokens) > self.n_batch:
            raise ValueError(f"{len(tokens)} tokens do not fit one batch of {self.n_batch}")
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            llama_private.fill_batch(self.batch, [(seq, len(self.tokens[seq]), chunk)], every_logit)
            self._decode("evaluate the prompt", seq)
            self.tokens[seq] += chunk

    def evaluate_rows(self, rows: dict[int, int]) -> dict[int, int]:
        """One token for each of several sequences ({seq: token}) in one batch; returns each
        sequence's row, the index its next-token logits are read at."""
        llama_private.fill_batch(self.batch, [(seq, len(self.tokens[seq]), [token]) for seq, token in rows.items()], True)
        self._decode("decode", None)
        for seq, token in rows.items():
            self.tokens[seq].append(token)
        return {seq: row for row, seq in enumerate(rows)}

    def _decode(self, what: str, seq: int | None) -> None:
        try:
            self.ctx.decode(self.batch)
        except RuntimeError as exc:
            self.forget(seq)
            raise EngineError(f"llama.cpp could not {what}: {exc}") from exc

    def drop_after(self, n: int, seq: int = 0) -> None:
        """Forget every token of `seq` after its first `n` (draft tokens the model did not confirm)."""
        if n < len(self.tokens[seq]):
            self.ctx.kv_cache_seq_rm(seq, n, -1)
            del self.tokens[seq][n:]

    def prepare(self, prompt: list[int], seq: int = 0) -> None:
        """Evaluate the whole of `prompt` afresh in `seq`, alone in its batches.

        Reusing a cached prefix would save its evaluation, but the same prompt evaluated in other
        batches gives other rounding, and a greedy answer then drifts: "Why do farmers rotate
        crops?" answered 281 characters after another question and 296 when asked again (real
        base, 64 tokens). The same question must always get the same answer at temperature 0.
        """
        self.forget(seq)
        self.evaluate(list(prompt), seq=seq)

    def top_token(self, row: int = -1) -> int:
        """The most likely next token at batch row `row`: what llama.cpp's greedy sampler picks (the
        first of equal maxima) without the copy of all 262k candidates that a sampler call makes
        (~1 ms each here, as much as a batch row's whole decode)."""
        import numpy as np

        return int(np.ctypeslib.as_array(self.ctx.get_logits_ith(row), shape=(self.ctx.model.n_vocab(),)).argmax())

    def logits(self, row: int = -1):
        """The next-token logits at batch row `row` of the last evaluation (a numpy copy)."""
        import numpy as np

        n_vocab = self.ctx.model.n_vocab()
        return np.ctypeslib.as_array(self.ctx.get_logits_ith(row), shape=(n_vocab,)).copy()
