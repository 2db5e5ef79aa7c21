"""How a training run talks to its caller: progress events out, a cancel flag in.

Kept apart from the recipe because the replay questions and the report card check the same flag
between answers, not only the optimisation loop between steps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


class TrainingCancelled(Exception):
    """Raised inside train() when the caller asked it to stop; nothing is published."""


def stop_if_cancelled(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise TrainingCancelled("training cancelled; nothing was published")


@dataclass
class Progress:
    """One progress event: what the UI's bar, ETA and loss plot are drawn from."""

    phase: str  # prepare | augment | replay | train | evaluate | publish | done
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    message: str = ""
