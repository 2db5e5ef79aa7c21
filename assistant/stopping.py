"""Prompt stops for worker commands: SIGTERM asks nicely, and a deadline makes sure.

A service manager (systemd, the app's own shutdown, a trainer's Cancel) sends SIGTERM and waits a
few seconds before it kills. Training checks its cancel flag between steps and between answers,
but one step of a large recipe on a loaded machine can take a minute (a SIGTERM had not ended
`assistant train` after 70 s). So the flag is set at once, and if the command has not finished
unwinding by `grace_s`, its own staging folders are removed and the process exits with 143, as a
process ended by SIGTERM does. Nothing partial is ever published: an adapter becomes visible only
by one atomic rename, which either happened or did not.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

STOP_GRACE_S = 6.0  # well inside a service manager's usual 10 s before SIGKILL


def stop_on_sigterm(cancel: threading.Event, staging_dir: Path | None = None, grace_s: float = STOP_GRACE_S,
                    on_deadline: Callable[[], None] | None = None) -> None:
    """On SIGTERM: set `cancel`; after `grace_s`, remove this process's staging folders and exit(143)."""

    def deadline() -> None:
        if staging_dir is not None:
            remove_own_staging(staging_dir)
        if on_deadline is not None:
            on_deadline()
        print("stopped: SIGTERM, and the current step did not end in time", file=sys.stderr, flush=True)
        os._exit(143)

    def handle(*_) -> None:
        if not cancel.is_set():
            cancel.set()
            timer = threading.Timer(grace_s, deadline)
            timer.daemon = True
            timer.start()

    signal.signal(signal.SIGTERM, handle)


def remove_own_staging(staging_dir: Path) -> None:
    """Staging folders this process made (their names carry its pid; see Registry.new_staging)."""
    marker = f"-{os.getpid()}-"
    if not staging_dir.is_dir():
        return
    for path in staging_dir.iterdir():
        if marker in path.name:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
