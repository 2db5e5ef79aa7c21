"""Failed log-ins, counted per client address: the client that keeps failing waits longer and
longer before its next attempt is even checked; every other client logs in as usual.

Why per client and not per user name: counting per name let anyone lock a trainer out with five
wrong passwords. Counting per client slows the guesser only, so the right password from an
address that has not failed always works. A client's first `FREE_FAILURES` failures cost nothing
but the password check (people mistype); after that each attempt waits `FIRST_DELAY_S`, doubling
per failure up to `MAX_DELAY_S`. A client forgotten for `FORGET_S` starts afresh, and the table
holds at most `MAX_CLIENTS` addresses (the one that failed longest ago goes first), so a flood of
addresses costs bounded memory. User names are never stored here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 3  # failures a client may make before it has to wait
FIRST_DELAY_S = 2.0  # the first wait; it doubles with each further failure
MAX_DELAY_S = 300.0  # never longer than this
FORGET_S = 900.0  # a client with no failure for this long is forgotten
MAX_CLIENTS = 10_000  # addresses remembered at most (about 1.5 MB)
CHECKING_S = 10.0  # an attempt being checked blocks the same client's next one for at most this


@dataclass
class _Client:
    failures: int = 0
    last: float = 0.0  # when it last failed (or began its first attempt)
    checking_since: float | None = None  # an attempt of this client is being checked now


def delay_after(failures: int) -> float:
    """Seconds a client must wait after its last failure before its next attempt is checked."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(FIRST_DELAY_S * 2 ** (failures - FREE_FAILURES), MAX_DELAY_S)


class LoginThrottle:
    """`begin(client)` before checking a password (0 means go ahead), `end(client, ok)` after."""

    def __init__(self, max_clients: int = MAX_CLIENTS, forget_s: float = FORGET_S):
        self.max_clients, self.forget_s = max_clients, forget_s
        self._clients: OrderedDict[str, _Client] = OrderedDict()  # oldest failure first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def wait_s(self, client: str, now: float) -> float:
        """How long `client` must still wait after its failures (0: it may try now)."""
        with self._lock:
            self._forget_old(now)
            record = self._clients.get(client)
            return self._failure_wait(record, now) if record else 0.0

    def begin(self, client: str, now: float) -> float:
        """0.0 and the attempt is this client's one being checked; else the seconds it must wait."""
        with self._lock:
            self._forget_old(now)
            record = self._clients.get(client)
            if record is None:
                while len(self._clients) >= self.max_clients:
                    self._clients.popitem(last=False)
                record = self._clients[client] = _Client(last=now)
            wait = self._wait(record, now)
            if wait == 0.0:
                record.checking_since = now
            return wait

    def end(self, client: str, ok: bool, now: float) -> None:
        """Record the outcome. A success does not wipe earlier failures: an insider with one
        account must not be able to reset the count between guesses at another's password."""
        with self._lock:
            record = self._clients.get(client)
            if record is None:  # forgotten meanwhile (table full): start it again
                if ok:
                    return
                record = self._clients[client] = _Client()
            record.checking_since = None
            if ok:
                if record.failures == 0:
                    del self._clients[client]
                return
            record.failures += 1
            record.last = now
            self._clients.move_to_end(client)

    def failures(self, client: str) -> int:
        record = self._clients.get(client)
        return record.failures if record else 0

    def _wait(self, record: _Client, now: float) -> float:
        if record.checking_since is not None and now - record.checking_since < CHECKING_S:
            return CHECKING_S - (now - record.checking_since)  # one attempt at a time per client
        return self._failure_wait(record, now)

    @staticmethod
    def _failure_wait(record: _Client, now: float) -> float:
        return max(0.0, record.last + delay_after(record.failures) - now) if record.failures else 0.0

    def _forget_old(self, now: float) -> None:
        while self._clients:
            client, record = next(iter(self._clients.items()))
            checking = record.checking_since is not None and now - record.checking_since < CHECKING_S
            if now - record.last <= self.forget_s or checking:
                return
            del self._clients[client]
