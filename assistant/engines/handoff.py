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


def threaded_stream(produce: Produce, on_leave: Callable[[threading.Event], None] | None = None,
                    wrap_error: Callable[[BaseException], BaseException] = lambda exc: exc) -> TokenStream:
    """Start `produce(emit, cancelled)` in a daemon thread now; return the stream of what it emits.

    `produce` must return soon after `cancelled` is set. `on_leave(cancelled)` runs once when the
    reader leaves (the stream closed, dropped or read to its end) and must set `cancelled` (it may
    also wake what the decode waits on). An exception in `produce` is re-raised in the reader,
    through `wrap_error`.
    """
    stream = TokenStream(on_leave or (lambda event: event.set()))

    def run() -> None:
        try:
            produce(stream._queue.put, stream._cancelled)
        except BaseException as exc:  # noqa: B036 - re-raised in the reader's thread
            stream._queue.put(_Failure(wrap_error(exc)))
        finally:
            stream._queue.put(_END)

    threading.Thread(target=run, name="decode", daemon=True).start()
    return stream


class TokenStream:
    """An iterator of token ids that cancels its decode when closed or dropped, even unread.

    A plain generator would not do: closing one that was never started skips its `finally`, so a
    request cancelled while it waits for a slot would stay in the line.
    """

    def __init__(self, on_leave: Callable[[threading.Event], None]):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._on_leave = on_leave
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

    def close(self) -> None:
        if not self._left:
            self._left = True
            self._on_leave(self._cancelled)

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # dropped unread or half read: the decode stops at its next token
        self.close()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error
