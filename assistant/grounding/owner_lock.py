"""One app process owns the knowledge index: an flock on <data-dir>/knowledge.lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from assistant.grounding.errors import KnowledgeBusy


class OwnerLock:
    """An exclusive, non-blocking lock on a file, held until release() or the process ends.

    flock locks belong to the open file, so the kernel drops it when the owner dies: a crashed app
    never leaves the index locked.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> OwnerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise KnowledgeBusy(f"the knowledge index in {self.path.parent} is owned by another app process "
                                f"(pid {owner}); stop that process, or use another --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
