"""Decode in a thread of its own and hand tokens to the caller's iterator through a queue.

Why: an engine's slot (or lock) must belong to a decode, never to whoever reads it. A reader that
stops reading (a browser tab closed mid-answer, a generator nobody closes, an exception in the
consumer) would otherwise keep the slot until the garbage collector runs, and every later request
would wait for it. Here the decode thread always ends: at its last token, at its first error, or at
the next token after the reader leaves, and it frees what it holds itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

Produce = Callable[[Callable[[int], None], threading.Event], None]

_END = object()  # the decode thread's last item: no more tokens
JOIN_S = 10.0  # a cancelled decode ends at its next token; this only bounds a stuck one


def threaded_stream(produce: Produce, on_leave: Callable[[threading.Event], None] | None = None,
                    wrap_error: Callable[[BaseException], BaseException] = lambda exc: exc) -> TokenStream:
    """Start `produce(emit, cancelled)` in a daemon thread now; return the stream of what it emits.

    `produce` must return soon after `cancelled` is set. `on_leave(cancelled)` runs once when the
    reader leaves (the stream closed, dropped or read to its end) and must set `cancelled` (it may
    also wake what the decode waits on). An exception in `produce` is re-raised in the reader,
    through `wrap_error`.
    """
    tokens: queue.SimpleQueue = queue.SimpleQueue()
    cancelled = threading.Event()

    def run() -> None:  # holds the queue and the flag, never the stream: dropping the stream must free it
        try:
            produce(tokens.put, cancelled)
        except BaseException as exc:  # noqa: B036 - re-raised in the reader's thread
            tokens.put(_Failure(wrap_error(exc)))
        finally:
            tokens.put(_END)

    worker = threading.Thread(target=run, name="decode", daemon=True)
    worker.start()
    return TokenStream(tokens, cancelled, on_leave or (lambda event: event.set()), worker)


class TokenStream:
    """An iterator of token ids that cancels its decode when closed or dropped, even unread.

    A plain generator would not do: closing one that was never started skips its `finally`, so a
    request cancelled while it waits for a slot would stay in the line.
    """

    def __init__(self, tokens: queue.SimpleQueue, cancelled: threading.Event,
                 on_leave: Callable[[threading.Event], None], worker: threading.Thread):
        self._queue, self._cancelled, self._on_leave, self._worker = tokens, cancelled, on_leave, worker
        self._left = False

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self._left:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def cancel(self) -> None:
        """Stop the decode from any thread, without waiting: a request still waiting for a slot
        leaves the line now, a decoding one stops at its next token; the reader then sees the end."""
        self._on_leave(self._cancelled)

    def close(self) -> None:
        """Stop the decode and wait (bounded) until it has: it ends at its next token, and a process
        that exits while a decode is inside torch or llama.cpp aborts ("terminate called...")."""
        if not self._left:
            self._left = True
            self._on_leave(self._cancelled)
            if threading.current_thread() is not self._worker:
                self._worker.join(timeout=JOIN_S)

    def __del__(self) -> None:  # dropped unread or half read: the decode stops at its next token
        self.close()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error
