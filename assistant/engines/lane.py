"""A lane: one context of the llama.cpp engine and the chats decoding in it together, a token each a step.

Where decoding is bound by reading the weights, the next tokens of several chats cost little more
in one `llama_decode` call than one chat's token alone; where it is bound by arithmetic (2 cores
and the 270M base, measured) they cost as much, and giving every chat a token a step is what
counts: nobody waits for a whole answer before theirs starts. All chats in a lane use the lane's
adapter (llama.cpp applies adapters per context); the engine puts a request into an idle lane
while fewer than `slots` decode, and otherwise into a busy lane on its adapter with a free sequence
(assistant.engines.llamacpp).

A lane's own thread drives it: it evaluates each newcomer's prompt alone (so the prompt's rounding
never depends on who else is decoding), then decodes one token of every chat per step: all in one
batch, or each alone in turn, whichever is faster on this machine now (engines.step_mode). Every
row of a batch gets the logits it would get alone, bit for bit, as long as a batch has at most the
engine's `rows` rows (llama_private.load_model_without_repack; tests/test_batching.py checks it on
the embedded base), so the same question gets the same greedy answer whoever else is asking, either
way.

A chat with a draft (engines.drafting: a checked answer's pair) always steps alone, so that its
draft is checked at the same steps whoever else is asking. Its draft's tokens are evaluated together,
and llama.cpp computes several tokens of one sequence with other kernels than one token (its
attention then multiplies with llamafile's sgemm, which it never uses for a single row, depending on
the cache's length): a draft's logits differed from one-token decoding after 6 of 10 prompt lengths
tried here (|Δlogit| up to 0.89). So a drafted answer is fixed for its prompt and draft, but is not
always the plain greedy answer; when drafting happened only while a chat was alone in its lane, the
same checked question could get another answer beside other chats. Drafting pays all the same: checked
answers the service decoded took 1.01x the plain answer's time with it and 1.27x without (one quiet
run each of benchmarks/trust.py). A llama.cpp built without llamafile drafts exactly, but evaluates
prompts half as fast (60 tokens: 189 vs 100 ms) and answered slower overall (service median 0.37 s
against 0.29 s).

The requests' own threads (engines.handoff) only wait for the lane to say they are done, so a
reader that leaves stops its chat at the next step and frees its sequence; the lane's thread
stays while the lane is busy and IDLE_S after (see Lane.start).
"""

from __future__ import annotations

import threading
import time

from assistant.engines import EngineError, GenerationSettings, drafting, step_mode
from assistant.engines.llama_slot import Slot

IDLE_S = 30.0  # an idle lane's thread ends after this long (the next request starts another)


class Request:
    """One chat's decode, from admission to its last token; the lane's thread fills it in."""

    def __init__(self, tokens: list[int], adapter_key: str | None, handle, settings: GenerationSettings,
                 draft: list[int], emit, cancelled: threading.Event, sampler):
        self.tokens, self.adapter_key, self.handle, self.settings = tokens, adapter_key, handle, settings
        self.draft, self.emit, self.cancelled, self.sampler = draft, emit, cancelled, sampler
        self.greedy = settings.temperature <= 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.generated: list[int] = []
        self.seq = -1
        self.next_token = -1  # sampled, not yet handed out
        self.finished = False


class Lane:
    """A context, its requests, and the thread that decodes them. `members` and `joining` are the
    engine's (read and changed under its condition); `active` belongs to the lane's thread."""

    def __init__(self, engine, slot: Slot):
        self.engine, self.slot = engine, slot
        self.key: str | None = None  # the adapter it decodes with while busy
        self.members = 0  # requests admitted and not yet done
        self.joining: list[Request] = []
        self.active: list[Request] = []
        self.thread: threading.Thread | None = None
        self.placed = False  # counted busy by the engine (from its placement until its last chat ends)
        self._steps = 0

    def start(self) -> None:
        """Called under the engine's condition when the lane takes a request. The thread then stays
        until the engine closes or the lane has been idle IDLE_S: llama.cpp's OpenMP workers belong
        to the thread that calls it, and a new calling thread for every request added ~9 ms to
        each first token, measured; an engine nobody uses any more is then freed all the same."""
        self.placed = True
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"lane-{self.slot.index}", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        engine = self.engine
        while True:
            with engine._cond:
                idle_since = None
                while not self.joining and not self.active:
                    if self.placed:  # its last chat ended: the lane is idle again
                        self.placed = False
                        engine._lane_idle(self)
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if engine._closing.is_set() or now - idle_since >= IDLE_S:
                        self.thread = None
                        return
                    engine._cond.wait(timeout=IDLE_S)
                newcomers, self.joining = self.joining, []
                most = engine._threads_now()
            try:
                for request in newcomers:
                    self._begin(request, most)
                self._step(most)
                self._retire()
            except BaseException as exc:  # noqa: B036 - a bug must end each chat with an error, not hang it
                self._fail_all(exc)

    def _stopping(self, request: Request) -> bool:
        return request.cancelled.is_set() or self.engine._closing.is_set()

    def _begin(self, request: Request, most: int) -> None:
        """Take a sequence and evaluate the prompt in it; the first token is then sampled."""
        engine, slot = self.engine, self.slot
        request.seq = next(s for s in range(slot.n_seq) if s not in {r.seq for r in self.active})
        self.active.append(request)
        if self._stopping(request):
            request.finished = True
            return
        try:
            # A lane only ever holds chats on one adapter (engines.llamacpp._place), so when the
            # context has another one, no chat here has been evaluated yet: switching (which clears
            # the cache) loses nothing.
            if slot.set_adapter(request.adapter_key, request.handle):
                with engine._cond:
                    engine.switches += 1
            slot.set_threads(engine._chooser.choose(most, 0), most)
            slot.prepare(request.tokens, request.seq)
            request.next_token = self._sample(request, -1)
        except EngineError as exc:
            request.error, request.finished = exc, True

    def _sample(self, request: Request, row: int) -> int:
        return self.slot.top_token(row) if request.greedy else request.sampler.sample(self.slot.ctx, row)

    def _step(self, most: int) -> None:
        """Hand out every chat's sampled token, then decode the next one of each that goes on."""
        live = []
        for request in self.active:
            if request.finished:
                continue
            if self._stopping(request):
                request.finished = True
                continue
            self._hand_out(request, request.next_token)
            if len(request.generated) == request.settings.max_tokens:
                request.finished = True
            else:
                live.append(request)
        if not live:
            return
        slot = self.slot
        threads = self.engine._chooser.choose(most, self._steps)
        switched = threads != slot.threads
        slot.set_threads(threads, most)
        self._steps += 1
        try:
            # A chat with a draft always steps alone: a draft's tokens are evaluated several at once,
            # with other kernels than a batch of chats gets (see the module docstring), so drafting it
            # only when it happens to be alone would make its answer depend on who else is asking.
            alone = [r for r in live if r.draft]
            together = [r for r in live if not r.draft]
            if len(together) == 1:
                alone, together = alone + together, []
            for request in alone:
                self._step_alone(request, threads, switched)
            if together:
                self._step_together(together, threads, switched)
        except EngineError as exc:
            for request in live:
                request.error, request.finished = exc, True

    def _step_together(self, live: list[Request], threads: int, switched: bool) -> None:
        """The next token of several chats: in one batch, or each alone in turn (engines.step_mode)."""
        modes, fixed = self.engine._step_modes, self.engine.step_mode
        mode = modes.choose(self._steps) if fixed == step_mode.MEASURED else fixed
        started = time.perf_counter()
        if mode == step_mode.TURNS:
            for request in live:
                self._step_alone(request, threads, switched)
        else:
            rows = self.slot.evaluate_rows({r.seq: r.next_token for r in live})
            for request in live:
                request.next_token = self._sample(request, rows[request.seq])
        if fixed == step_mode.MEASURED and not switched:  # a step right after a thread switch pays for it
            modes.record(mode, (time.perf_counter() - started) / len(live))

    def _step_alone(self, request: Request, threads: int, switched: bool) -> None:
        """One chat alone: its next token, or several at once from its draft (greedy only)."""
        slot, token = self.slot, request.next_token
        room = min(self.engine.rows - 1, drafting.MOST_PROPOSED, request.settings.max_tokens - len(request.generated) - 1)
        proposal = drafting.propose(request.generated, request.draft, room)
        if not proposal:
            started = time.perf_counter()
            slot.evaluate([token], seq=request.seq)
            if not switched:  # a token right after a switch pays for the switch: not a fair sample
                self.engine._chooser.record(threads, time.perf_counter() - started)
            request.next_token = self._sample(request, -1)
            return
        slot.evaluate([token, *proposal], every_logit=True, seq=request.seq)
        predictions = [self._sample(request, i) for i in range(len(proposal) + 1)]
        kept = drafting.accepted(proposal, predictions)
        slot.drop_after(len(slot.tokens[request.seq]) - (len(proposal) - kept), request.seq)
        for confirmed in proposal[:kept]:
            self._hand_out(request, confirmed)
        request.next_token = predictions[kept]  # the model's own choice after the last confirmed token

    @staticmethod
    def _hand_out(request: Request, token: int) -> None:
        request.sampler.accept(token)
        request.emit(token)
        request.generated.append(token)

    def _retire(self) -> None:
        """Free the sequences of chats that ended; each request's own thread then returns."""
        for request in [r for r in self.active if r.finished]:
            self.active.remove(request)
            self.slot.forget(request.seq)
            self._done(request)

    def _done(self, request: Request) -> None:
        request.sampler.close()
        request.done.set()
        with self.engine._cond:
            self.members -= 1
            self.engine._cond.notify_all()

    def _fail_all(self, exc: BaseException) -> None:
        engine = self.engine
        error = exc if isinstance(exc, EngineError) else EngineError(f"llama.cpp failed: {exc}")
        with engine._cond:
            pending, self.joining = self.active + self.joining, []
            self.active = []
        try:
            self.slot.forget()
        except Exception:  # noqa: BLE001 - the context is reset on its next use anyway
            pass
        for request in pending:
            request.error = request.error or error
            self._done(request)
