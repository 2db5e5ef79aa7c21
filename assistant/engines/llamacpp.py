"""llama.cpp engine: the 4-bit GGUF base loaded once, many chats at once, adapters per request.

One `llama_model` holds the weights; each context (a lane, engines.lane) holds the KV streams of up
to `batch` chats on one adapter, each of which gets a token every step (in one batch or in turn,
whichever is faster: engines.step_mode). `slots` lanes (default: one per core) decode at once, each
with the adapter its chats chose, so chats on different adapters share the cores. A request takes
an idle lane while fewer than `slots` decode, else joins a busy lane on its adapter that has room,
else waits (first come, first served); the app keeps its own bounded queue in front of this, which
shows each user their place.

A lane belongs to its own thread, never to a consumer: each request's thread only waits while the
lane decodes its chat to the end (or until cancelled), handing tokens to the caller's iterator
through a queue. A caller that stops reading (a closed tab, a generator never closed, an exception
in the consumer) can therefore hold a place no longer than one answer takes to decode; closing or
dropping the iterator cancels the chat at the next step, and a request cancelled while it waits
leaves the line at once.

Switching is cheap: each adapter is initialised once against the model (a few ms), and a context
sets its adapter list when it is idle; there is one context more than `slots` (SPARE_CONTEXTS),
and a request takes an idle one that already has its adapter, since a change costs a graph
reservation. The KV cache was computed under the previous adapter, so a switch clears it. Every
request evaluates its whole prompt, alone (see llama_slot.Slot.prepare: reusing a cached prefix
made the same greedy question give another answer).

Threads: llama.cpp's workers spin while they wait, so contexts must never ask for more threads
together than there are cores (two 2-thread decodes on 2 cores ran ~50x slower, measured). The
core budget is split between the lanes that are decoding, re-read before every step; a lane alone
uses all of it or one thread, whichever is faster beside what else the machine runs
(engines.threads), and OpenMP's waiting threads sleep soon (engines.openmp). For the same reason a
request takes an idle lane before it joins a busy one (see _place).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from assistant.engines import EngineError, GenerationSettings, llama_private, openmp
from assistant.engines.handoff import threaded_stream
from assistant.engines.lane import Lane, Request
from assistant.engines.llama_slot import Slot
from assistant.engines.step_mode import MEASURED, StepModeChooser
from assistant.engines.threads import ThreadChooser
from assistant.prompts import get_format

openmp.configure()  # before anything imports llama_cpp (which loads libgomp)

# Contexts beyond the decodes at once. Changing a context's adapters makes llama.cpp reserve its compute
# graph anew (llama_context::set_adapters_lora sets sched_need_reserve): 8.6 ms of time to first token
# per switch on a quiet machine here, 44.6 ms in the run; a request takes a free context that already has its adapter when there is one, so with
# one spare the two shipped adapters and the bare base each keep a context on a 2-core machine. A
# context of BATCH_ROWS sequences costs ~130 MB (its KV streams), measured (engines.llama_slot).
SPARE_CONTEXTS = 1

# Chats decoded in one batch at most. A row's logits are bit-identical to decoding it alone up to 7
# rows and differ from 8 (embedded base, weights not repacked, 2 threads, AVX-512; measured and
# checked in tests/test_batching.py), so a greedy answer never depends on who else is asking. One
# decode step on one thread took 13.6 ms for 1 row and 124 ms for 7 (benchmarks/serve.py has the
# aggregate rates): batching pays here only through the first-token wait, not the total speed.
BATCH_ROWS = 7


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, gguf_path: Path, prompt_format: str = "qa", n_ctx: int = 2048, n_threads: int | None = None,
                 slots: int | None = None, batch: int = BATCH_ROWS, repack: bool = False,
                 step_mode: str = MEASURED):
        from llama_cpp import Llama

        llama_private.check_version()
        self.prompt_format = get_format(prompt_format)
        self.gguf_path = Path(gguf_path)
        cores = max(1, len(os.sched_getaffinity(0)))
        self.threads = n_threads or cores
        self.rows = BATCH_ROWS  # rows of one batch at most (chats, or one chat's drafted tokens)
        self.batch = max(1, min(batch, self.rows))  # chats in one lane
        try:
            # The Llama object owns the model (and a small context of its own, used by the raw
            # baseline in benchmarks); chats run in the lanes' contexts.
            # `repack`: ggml's repacked weights, as before batching (the benchmarks' baseline only)
            with contextlib.nullcontext() if repack else llama_private.load_model_without_repack():
                self.llm = Llama(model_path=str(self.gguf_path), n_ctx=n_ctx, n_threads=self.threads,
                                 n_threads_batch=self.threads, verbose=False)
            self.slots = slots or cores  # lanes decoding at once
            self._slots = [Slot(self, i, n_ctx, self.batch) for i in range(self.slots + SPARE_CONTEXTS)]
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama.cpp could not load {self.gguf_path.name}: {exc}") from exc
        self.base_loads = 1  # the benchmark and tests check this stays 1 across adapter switches
        self._adapters: dict[str, object] = {}  # key -> llama_adapter_lora_p
        self.switches = 0
        self._budget = self.threads  # cores the decoding lanes share (fewer while a job trains)
        self._cond = threading.Condition()
        self._lanes = [Lane(self, slot) for slot in self._slots]
        self._idle: list[Lane] = list(self._lanes)  # least recently used first
        self._waiting: deque[object] = deque()
        self._busy = 0  # lanes decoding (or held by next_token_logits)
        self._closing = threading.Event()  # set by close(): every decode ends, no new one starts
        self._chooser = ThreadChooser()  # one thread or all of them, whichever decodes faster now
        self.step_mode = step_mode  # a lane's several chats: in one batch, in turns, or whichever is faster
        self._step_modes = StepModeChooser()

    # lanes ------------------------------------------------------------------------------------
    def _admit(self, request: Request) -> None:
        """Put `request` in a lane once it is first in line and one has room for it (see _place).
        `Cancelled` if its flag is set meanwhile."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while True:
                    if self._closing.is_set() or request.cancelled.is_set():
                        raise Cancelled
                    lane = self._place(request.adapter_key) if self._waiting[0] is ticket else None
                    if lane is not None:
                        break
                    self._cond.wait()
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may now be first
            lane.members += 1
            lane.joining.append(request)
            lane.start()

    def _place(self, key: str | None) -> Lane | None:
        """An idle lane while fewer than `slots` decode (one that already has `key` if any, else the
        least recently used), else the busy lane on adapter `key` with the fewest chats, if it has
        room; None if neither.

        An idle lane first: two lanes of one thread each decoded more tokens per second on 2 cores
        than one lane of two threads, whether one chat each (113 vs 73 tok/s) or several (107 tok/s
        at 8 chats, 4 a lane, vs 53-63 tok/s with 7 in one lane), measured in benchmarks/serve.py.
        """
        if self._busy < self.slots and self._idle:
            lane = next((lane for lane in reversed(self._idle) if lane.slot.adapter == key), self._idle[0])
            self._idle.remove(lane)
            self._busy += 1
            lane.key = key
            return lane
        joinable = [lane for lane in self._lanes if lane.members and lane.key == key and lane.members < self.batch]
        return min(joinable, key=lambda lane: lane.members, default=None)

    def _lane_idle(self, lane: Lane) -> None:
        """Called under the condition by a lane whose last chat ended (and by next_token_logits)."""
        lane.key = lane.slot.adapter
        self._idle.append(lane)
        self._busy -= 1
        self._cond.notify_all()

    def _cancel(self, cancelled: threading.Event) -> None:
        with self._cond:
            cancelled.set()
            self._cond.notify_all()  # a request still waiting for a lane leaves the line now

    def close(self, timeout: float = 5.0) -> None:
        """End every decode at its next step and turn the waiting away; wait (bounded) until no
        lane is busy, so the model is never freed under a running decode at exit."""
        with self._cond:
            self._closing.set()
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._busy == 0, timeout=timeout)

    def stats(self) -> dict:
        """Lanes in all, free and decoding, and requests waiting: the stress tests' and /health's view."""
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
        """Free an adapter once no lane is decoding with it (waits for those requests to end)."""
        import llama_cpp

        with self._cond:
            if key not in self._adapters:
                return
            while any(lane.key == key or lane.slot.adapter == key for lane in self._lanes if lane not in self._idle):
                self._cond.wait()
            for lane in self._idle:
                if lane.slot.adapter == key:
                    lane.slot.set_adapter(None, None)
                    lane.key = None
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
            key = adapter.key if adapter is not None else None
            with self._cond:
                handle = self._load_locked(adapter.key, adapter.gguf_path) if adapter is not None else None
            request = Request(tokens, key, handle, settings, draft, emit, cancelled, _sampler(settings))
            try:
                self._admit(request)
            except Cancelled:
                request.sampler.close()
                return
            request.done.wait()  # the lane's thread decodes it (engines.lane)
            if request.error is not None:
                raise request.error

        return threaded_stream(produce, on_leave=self._cancel, wrap_error=_engine_error)

    def next_token_logits(self, prompt_ids: list[int], adapter) -> object:
        """The full next-token distribution after `prompt_ids` (tests compare it with transformers)."""
        with self._cond:
            handle = self._load_locked(adapter.key, adapter.gguf_path) if adapter is not None else None
            self._cond.wait_for(lambda: self._busy < self.slots and self._idle and not self._waiting)
            lane = self._idle.pop(0)
            self._busy += 1
            lane.key = object()  # no request joins it meanwhile
        try:
            lane.slot.set_adapter(adapter.key if adapter is not None else None, handle)
            lane.slot.forget()
            lane.slot.evaluate(list(prompt_ids))
            return lane.slot.logits()
        finally:
            with self._cond:
                self._lane_idle(lane)


class Cancelled(Exception):
    """A request was cancelled before it got a slot."""


def _engine_error(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, EngineError) else EngineError(f"llama.cpp failed: {exc}")


def _sampler(settings: GenerationSettings):
    return llama_private.new_sampler(settings.temperature <= 0, settings.top_k, settings.top_p, settings.temperature,
                                     settings.seed)
