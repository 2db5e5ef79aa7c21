"""llama.cpp engine: the 4-bit GGUF base loaded once, several chats at once, adapters per request.

One `llama_model` holds the weights; each context holds its own KV cache and its own adapter set,
so `slots` chats (default: one per core) decode at once, each with the adapter its session chose.
A request waits for a free slot (first come, first served); the app keeps its own bounded queue in
front of this, which shows each user their place.

A slot belongs to a decode, never to a consumer: each request decodes in a thread of its own that
takes a slot, decodes to the end (or until cancelled) and frees the slot, handing tokens to the
caller's iterator through a queue. A caller that stops reading (a closed tab, a generator never
closed, an exception in the consumer) can therefore hold a slot no longer than one answer takes to
decode; closing or dropping the iterator cancels the decode at the next token, and a request
cancelled while it waits leaves the line at once.

Switching is cheap: each adapter is initialised once against the model (a few ms), and a context
sets its adapter list per request; there is one context more than `slots` (SPARE_CONTEXTS), and a
request takes a free one that already has its adapter, since a change costs a graph reservation.
The KV cache was computed under the previous adapter, so a switch clears the context's history.
Every request evaluates its whole prompt (see llama_slot.Slot.prepare: reusing a cached prefix made
the same greedy question give another answer).

Threads: llama.cpp's workers spin while they wait, so contexts must never ask for more threads
together than there are cores (two 2-thread decodes on 2 cores ran ~50x slower, measured). The
core budget is split between the slots that are decoding, re-read before every decode call; a
decode alone uses all of it or one thread, whichever is faster beside what else the machine runs
(engines.threads), and OpenMP's waiting threads sleep soon (engines.openmp).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from assistant.engines import EngineError, GenerationSettings, drafting, llama_private, openmp
from assistant.engines.handoff import threaded_stream
from assistant.engines.llama_slot import Slot
from assistant.engines.threads import ThreadChooser
from assistant.prompts import get_format

openmp.configure()  # before anything imports llama_cpp (which loads libgomp)

# Contexts beyond the decodes at once. Changing a context's adapters makes llama.cpp reserve its compute
# graph anew (llama_context::set_adapters_lora sets sched_need_reserve): 8.6 ms of time to first token
# per switch on a quiet machine here, 44.6 ms in the run; a request takes a free context that already has its adapter when there is one, so with
# one spare the two shipped adapters and the bare base each keep a context on a 2-core machine. A used
# context costs ~60 MB (its KV cache), measured.
SPARE_CONTEXTS = 1


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, gguf_path: Path, prompt_format: str = "qa", n_ctx: int = 2048, n_threads: int | None = None,
                 slots: int | None = None):
        from llama_cpp import Llama

        llama_private.check_version()
        self.prompt_format = get_format(prompt_format)
        self.gguf_path = Path(gguf_path)
        cores = max(1, len(os.sched_getaffinity(0)))
        self.threads = n_threads or cores
        try:
            # The Llama object owns the model (and a small context of its own, used by the raw
            # baseline in benchmarks); chats run in the slots' contexts.
            self.llm = Llama(model_path=str(self.gguf_path), n_ctx=n_ctx, n_threads=self.threads,
                             n_threads_batch=self.threads, verbose=False)
            self.slots = slots or cores  # decodes at once
            self._slots = [Slot(self, i, n_ctx) for i in range(self.slots + SPARE_CONTEXTS)]
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama.cpp could not load {self.gguf_path.name}: {exc}") from exc
        self.base_loads = 1  # the benchmark and tests check this stays 1 across adapter switches
        self._adapters: dict[str, object] = {}  # key -> llama_adapter_lora_p
        self.switches = 0
        self._budget = self.threads  # cores the decoding slots share (fewer while a job trains)
        self._cond = threading.Condition()
        self._free: list[Slot] = list(self._slots)
        self._waiting: deque[object] = deque()
        self._busy = 0
        self._closing = threading.Event()  # set by close(): every decode ends, no new one starts
        self._chooser = ThreadChooser()  # one thread or all of them, whichever decodes faster now

    # slots ------------------------------------------------------------------------------------
    def _acquire(self, cancelled: threading.Event | None = None, adapter_key: str | None = None) -> Slot:
        """A context to decode in once fewer than `slots` decode, first come first served: one that
        already has `adapter_key` when one is free, else the one least recently used (see
        SPARE_CONTEXTS). `Cancelled` if `cancelled` is set meanwhile."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while not (self._busy < self.slots and self._free and self._waiting[0] is ticket):
                    if self._closing.is_set() or (cancelled is not None and cancelled.is_set()):
                        raise Cancelled
                    self._cond.wait()
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may now be first
            self._busy += 1
            # _free is kept least recently used first; the caller switches the adapter if it differs
            slot = next((c for c in reversed(self._free) if c.adapter == adapter_key), self._free[0])
            self._free.remove(slot)
            return slot

    def _release(self, slot: Slot) -> None:
        with self._cond:
            self._free.append(slot)
            self._busy -= 1
            self._cond.notify_all()

    def _cancel(self, cancelled: threading.Event) -> None:
        with self._cond:
            cancelled.set()
            self._cond.notify_all()  # a request still waiting for a slot leaves the line now

    def close(self, timeout: float = 5.0) -> None:
        """End every decode at its next token and turn the waiting away; wait (bounded) until no
        slot is busy, so the model is never freed under a running decode at exit."""
        with self._cond:
            self._closing.set()
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._busy == 0, timeout=timeout)

    def stats(self) -> dict:
        """Slots in all, free and decoding, and requests waiting: the stress tests' and /health's view."""
        with self._cond:
            return {"slots": self.slots, "free": self.slots - self._busy, "busy": self._busy,
                    "waiting": len(self._waiting)}

    def _threads_now(self) -> int:
        with self._cond:
            return max(1, self._budget // max(1, self._busy))

    # adapters -------------------------------------------------------------------------------
    def load_adapter(self, adapter) -> None:
        with self._cond:
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
        """Free an adapter once no slot is decoding with it (waits for those requests to end)."""
        import llama_cpp

        with self._cond:
            if key not in self._adapters:
                return
            while any(s.adapter == key for s in self._slots if s not in self._free):
                self._cond.wait()
            for slot in self._slots:
                if slot.adapter == key:
                    slot.set_adapter(None, None)
            llama_cpp.llama_adapter_lora_free(self._adapters.pop(key))

    def yield_cores(self, busy: bool) -> None:
        """Leave a core to a background job while it runs (and take it back after).

        With a training process on one of two cores, decoding on both fell from ~58 to ~0.4 tok/s
        (spinning workers); one thread fewer keeps ~25-35 tok/s.
        """
        with self._cond:
            self._budget = max(1, self.threads - 1) if busy else self.threads

    # generation -----------------------------------------------------------------------------
    def tokenize(self, prompt: str) -> list[int]:
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def n_ctx(self) -> int:
        return self._slots[0].n_ctx()

    accepts_draft = True  # generate_ids takes `draft` (assistant.engines.drafting)

    def generate_ids(self, prompt_ids: list[int], adapter, settings: GenerationSettings, draft: str = "") -> Iterator[int]:
        """The answer's token ids. `draft`: a text the answer is likely to copy (the pair a checked
        answer is grounded on); a greedy decode then checks several of its tokens per step."""
        tokens = list(prompt_ids)
        if not tokens:
            raise EngineError("an empty prompt has nothing to continue")
        if len(tokens) + settings.max_tokens > self.n_ctx():
            raise EngineError(f"the conversation is too long ({len(tokens)} tokens); clear the chat and ask again")
        drafted = self.llm.tokenize(draft.encode("utf-8"), add_bos=False, special=False) if draft.strip() else []
        return self._stream(tokens, adapter, settings, drafted if settings.temperature <= 0 else [])

    def _stream(self, tokens: list[int], adapter, settings: GenerationSettings, draft: list[int]) -> Iterator[int]:
        def produce(emit, cancelled: threading.Event) -> None:
            try:
                slot = self._acquire(cancelled, adapter.key if adapter is not None else None)
            except Cancelled:
                return
            try:
                self._decode(slot, tokens, adapter, settings, emit, cancelled, draft)
            finally:
                self._release(slot)

        return threaded_stream(produce, on_leave=self._cancel, wrap_error=_engine_error)

    def _decode(self, slot: Slot, tokens: list[int], adapter, settings: GenerationSettings, emit,
                cancelled: threading.Event, draft: list[int]) -> None:
        with self._cond:
            handle = self._load_locked(adapter.key, adapter.gguf_path) if adapter is not None else None
            if slot.set_adapter(adapter.key if adapter is not None else None, handle):
                self.switches += 1
        slot.set_threads(self._chooser.choose(self._threads_now(), 0))  # the faster count lately
        slot.prepare(tokens)
        sampler = _sampler(settings)
        generated: list[int] = []
        try:
            token = sampler.sample(slot.ctx, -1)
            while not (cancelled.is_set() or self._closing.is_set()):
                sampler.accept(token)
                emit(token)
                generated.append(token)
                if len(generated) == settings.max_tokens:
                    break
                threads = self._chooser.choose(self._threads_now(), len(generated))
                switched = threads != slot.threads
                slot.set_threads(threads)
                # only greedy decodes get a draft (see generate_ids); room is kept for the token after it
                proposal = drafting.propose(generated, draft, min(drafting.MOST_PROPOSED,
                                                                  settings.max_tokens - len(generated) - 1))
                if not proposal:
                    started = time.perf_counter()
                    slot.evaluate([token])
                    if not switched:  # a token right after a switch pays for the switch: not a fair sample
                        self._chooser.record(threads, time.perf_counter() - started)
                    token = sampler.sample(slot.ctx, -1)
                    continue
                slot.evaluate([token, *proposal], every_logit=True)
                predictions = [sampler.sample(slot.ctx, i) for i in range(len(proposal) + 1)]
                kept = drafting.accepted(proposal, predictions)
                slot.drop_after(len(slot.tokens) - (len(proposal) - kept))
                for confirmed in proposal[:kept]:
                    sampler.accept(confirmed)
                    emit(confirmed)
                    generated.append(confirmed)
                token = predictions[kept]  # the model's own choice after the last confirmed token
        finally:
            sampler.close()

    def next_token_logits(self, prompt_ids: list[int], adapter) -> object:
        """The full next-token distribution after `prompt_ids` (tests compare it with transformers)."""
        slot = self._acquire()
        try:
            with self._cond:
                handle = self._load_locked(adapter.key, adapter.gguf_path) if adapter is not None else None
                slot.set_adapter(adapter.key if adapter is not None else None, handle)
            slot.forget()
            slot.evaluate(list(prompt_ids))
            return slot.logits()
        finally:
            self._release(slot)


class Cancelled(Exception):
    """A request was cancelled before it got a slot."""


def _engine_error(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, EngineError) else EngineError(f"llama.cpp failed: {exc}")


def _sampler(settings: GenerationSettings):
    return llama_private.new_sampler(settings.temperature <= 0, settings.top_k, settings.top_p, settings.temperature,
                                     settings.seed)
