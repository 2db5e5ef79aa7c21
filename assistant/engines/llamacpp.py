"""llama.cpp engine: the 4-bit GGUF base loaded once, GGUF LoRA adapters switched per request.

Switching is cheap: each adapter is initialised once against the loaded model (a few ms), and a
request sets the context's adapter list (empty for the bare base). The KV cache was computed under
the previous adapter, so a switch also resets the context's token history; requests that stay on
one adapter keep llama-cpp-python's prompt-prefix reuse.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from assistant.engines import EngineError, GenerationSettings, stream_answer
from assistant.prompts import get_format

NO_ADAPTER = None


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, gguf_path: Path, prompt_format: str = "qa", n_ctx: int = 2048, n_threads: int | None = None):
        from llama_cpp import Llama

        self.prompt_format = get_format(prompt_format)
        self.gguf_path = Path(gguf_path)
        threads = n_threads or max(1, len(os.sched_getaffinity(0)))
        self.threads = threads
        try:
            self.llm = Llama(model_path=str(self.gguf_path), n_ctx=n_ctx, n_threads=threads,
                             n_threads_batch=threads, verbose=False)
        except Exception as exc:
            raise EngineError(f"llama.cpp could not load {self.gguf_path.name}: {exc}") from exc
        self.base_loads = 1  # the benchmark and tests check this stays 1 across adapter switches
        self._adapters: dict[str, object] = {}  # key -> llama_adapter_lora_p
        self._active: str | None = NO_ADAPTER
        self.switches = 0
        self._lock = threading.Lock()

    # adapters -------------------------------------------------------------------------------
    def load_adapter(self, adapter) -> None:
        with self._lock:
            self._load_locked(adapter.key, adapter.gguf_path)

    def _load_locked(self, key: str, path: Path):
        import llama_cpp

        if key not in self._adapters:
            handle = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode())
            if not handle:
                raise EngineError(f"llama.cpp could not load adapter {key} from {Path(path).name} "
                                  "(is it a LoRA for this base?)")
            self._adapters[key] = handle
        return self._adapters[key]

    def unload_adapter(self, key: str) -> None:
        import llama_cpp

        with self._lock:
            handle = self._adapters.pop(key, None)
            if handle is None:
                return
            if self._active == key:
                self._set_active(None)
            llama_cpp.llama_adapter_lora_free(handle)

    def _set_active(self, key: str | None) -> None:
        import llama_cpp

        if key == self._active:
            return
        if key is None:
            rc = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[key])
            scales = (ctypes.c_float * 1)(1.0)
            rc = llama_cpp.llama_set_adapters_lora(self.llm.ctx, handles, 1, scales)
        if rc != 0:
            raise EngineError(f"llama.cpp refused to switch to adapter {key} (code {rc})")
        self.llm.reset()  # the cached prompt was computed under the old adapter
        self._active = key
        self.switches += 1

    def yield_cores(self, busy: bool) -> None:
        """Leave a core to a background job while it runs (and take it back after).

        llama.cpp's OpenMP threads busy-wait at every sync point; with a training process on one of
        two cores, decoding fell from ~58 to ~0.4 tok/s. One thread fewer keeps ~25-35 tok/s.
        """
        import llama_cpp

        n = max(1, self.threads - 1) if busy else self.threads
        with self._lock:
            llama_cpp.llama_set_n_threads(self.llm.ctx, n, n)

    # generation -----------------------------------------------------------------------------
    def tokenize(self, prompt: str) -> list[int]:
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def generate_ids(self, prompt: str, adapter, settings: GenerationSettings) -> Iterator[int]:
        tokens = self.tokenize(prompt)
        if len(tokens) + settings.max_tokens > self.llm.n_ctx():
            raise EngineError(f"the conversation is too long ({len(tokens)} tokens); clear the chat and ask again")
        with self._lock:
            if adapter is not None:
                self._load_locked(adapter.key, adapter.gguf_path)
            self._set_active(adapter.key if adapter is not None else None)
            self.llm.set_seed(settings.seed)
            stream = self.llm.generate(tokens, top_k=settings.top_k, top_p=settings.top_p, min_p=0.0,
                                       temp=settings.temperature, repeat_penalty=1.0)
            try:
                for count, token in enumerate(stream, start=1):
                    yield token
                    if count >= settings.max_tokens:
                        break
            finally:
                stream.close()

    def generate(self, messages: list[dict], adapter, settings: GenerationSettings) -> Iterator[str]:
        return stream_answer(self, messages, adapter, settings)
