"""An answer's text, from the engine's blocking iterator to the event loop, and back out when the
client leaves; and the door that bounds how many answers the API has in flight.

Why a thread per answer (not the event loop, not anyio's shared pool): iterating an `Answer`
blocks while the engine decodes, and the Gradio app shares this event loop; the shared pool has 40
threads for every Gradio handler too, and a long answer would hold one for its whole length.

Why the thread that iterates is also the one that closes: `Answer.close()` closes a generator, which
Python refuses while another thread is inside it (ValueError "generator already executing"). So
when the client goes away the loop only raises a flag; the thread sees it at the answer's next
piece (the next token, within milliseconds while decoding), stops and closes the answer, which
frees the engine slot. A client that leaves while its request still waits for a slot is let go at
once: `Answer.cancel()` is safe from any thread and takes the request out of the engine's line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from api.errors import ApiError

AHEAD = 64  # pieces the thread may run ahead of a slow client; then it waits (memory stays bounded)
_READY, _PIECE, _END, _ERROR = "ready", "piece", "end", "error"


class Pump:
    """Starts an answer (`begin()` returns it) and iterates it in a thread of its own: `await
    pump.started()` gives the answer or raises what `begin` raised (a refusal, before any token);
    then `async for piece in pump` reads its text on the loop. One thread does both, so the first
    token costs no second hand-over (anyio's pool, then this thread)."""

    def __init__(self, begin, loop: asyncio.AbstractEventLoop):
        self.answer, self._begin, self._loop = None, begin, loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self._room = threading.Semaphore(AHEAD)
        self._gone = threading.Event()
        self.closed = threading.Event()  # set once the answer is closed (its slot freed)
        self._thread = threading.Thread(target=self._run, name="api-answer", daemon=True)

    def start(self) -> Pump:
        self._thread.start()
        return self

    def leave(self) -> None:
        """The client is gone (or the reader stopped): the answer is cancelled now (a request still
        waiting for a slot leaves the line), and the thread stops at the next piece and closes it."""
        if not self._gone.is_set():
            self._gone.set()
            answer = self.answer
            if answer is not None:
                answer.cancel()
            self._room.release(AHEAD + 1)  # a thread waiting for room wakes up and sees the flag

    async def started(self):
        kind, value = await self._queue.get()
        if kind == _ERROR:
            raise value
        return value

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            while True:
                kind, value = await self._queue.get()
                self._room.release()
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise value
                yield value
        finally:  # read to the end, an error, or cancelled because the client went away
            self.leave()

    def _run(self) -> None:
        try:
            self.answer = self._begin()
        except BaseException as exc:  # noqa: B036 - a refusal: the reader answers it with a 4xx
            self._put(_ERROR, exc)
            self.closed.set()
            return
        if self._gone.is_set():  # left while the answer was being started: leave() had none to cancel
            self.answer.cancel()
        self._put(_READY, self.answer)
        try:
            for piece in self.answer:
                self._room.acquire()
                if self._gone.is_set():
                    return
                self._put(_PIECE, piece)
            self._put(_END, None)
        except BaseException as exc:  # noqa: B036 - handed to the reader, which turns it into an error
            self._put(_ERROR, exc)
        finally:
            try:
                self.answer.close()  # here, in the thread that iterated (see the module docstring)
            finally:
                self.closed.set()

    def _put(self, kind: str, value) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed (server exit): nobody is reading any more
            self._gone.set()


async def until_disconnect(receive) -> None:
    """Returns when the client has gone away (its request body already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Door:
    """How many answers the API has in flight: at most `per_user` per key's user (429 beyond), and at
    most `most` in all (503 beyond: the engine's queue is full). Checked and counted in one step on
    the event loop, so a burst of parallel requests cannot slip past."""

    def __init__(self, most: int, per_user: int):
        self.most, self.per_user = most, per_user
        self.total = 0
        self._per: dict[str, int] = {}

    def enter(self, who: str | None) -> None:
        if who is not None and self._per.get(who, 0) >= self.per_user:
            raise ApiError(429, f"you already have {self.per_user} requests in progress; wait for an answer "
                                "first", None, "too_many_requests", {"Retry-After": "1"})
        if self.total >= self.most:
            raise ApiError(503, "the server is answering as many questions as it can queue; try again shortly",
                           None, "engine_overloaded", {"Retry-After": "5"})
        self.total += 1
        if who is not None:
            self._per[who] = self._per.get(who, 0) + 1

    def leave(self, who: str | None) -> None:
        self.total -= 1
        if who is not None:
            self._per[who] -= 1
            if not self._per[who]:
                del self._per[who]
