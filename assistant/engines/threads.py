"""How many threads one decode uses: all it may have while that is fastest, one when it is not.

On an idle machine two threads decode about twice as fast as one (60 vs 31 tok/s here). Beside a
CPU-bound program the two threads wait for each other at every barrier while one of them is
descheduled, and two threads fall far below one (15 vs 32 tok/s beside one co-tenant, measured in
benchmarks/cpu_sharing.py). Which count is faster depends on what else the machine runs right
now, so it is measured, not guessed: each count's time per token is tracked (a moving average),
the faster one decodes, and every PERIOD tokens the other one decodes PROBE tokens, so a change
in the machine's load is noticed within a fraction of a second.
"""

from __future__ import annotations

import threading

PERIOD = 96  # tokens between probes of the other thread count, when both are about as fast
MOST_STRETCH = 8  # the most the period is stretched for an other count that is much slower
PROBE = 3  # tokens decoded with the other count per probe (the first one after a switch is not timed)
WEIGHT = 0.3  # weight of a new measurement in the moving average


def probe_period(slower: float) -> int:
    """Tokens between probes when the other count takes `slower` times as long a token: stretched
    in proportion, so probing costs about the same share of time however slow the other count is
    (beside two busy programs a two-thread token took up to 5x a one-thread token here)."""
    return PERIOD * max(1, min(MOST_STRETCH, round(slower)))


class MovingCosts:
    """Seconds per token of each way to decode (a moving average), shared by threads."""

    def __init__(self):
        self._cost: dict = {}
        self._lock = threading.Lock()

    def record(self, way, seconds: float) -> None:
        with self._lock:
            old = self._cost.get(way)
            self._cost[way] = seconds if old is None else (1 - WEIGHT) * old + WEIGHT * seconds

    def costs(self) -> dict:
        with self._lock:
            return dict(self._cost)


class ThreadChooser(MovingCosts):
    """Shared by an engine's decodes: the machine's load is the same for all of them. The ways
    are thread counts, recorded after each token (not the first after a switch: that one pays
    the change)."""

    def choose(self, most: int, token_index: int) -> int:
        """Threads for the next token of a decode allowed `most` threads."""
        if most <= 1:
            return 1
        known = {n: c for n, c in self.costs().items() if n in (1, most)}
        if most not in known:
            return most
        if 1 not in known:
            return 1 if token_index % PERIOD >= PERIOD - PROBE else most
        best = min(known, key=known.get)
        other = 1 if best == most else most
        period = probe_period(known[other] / known[best])
        return other if token_index % period >= period - PROBE else best
