"""Who is calling the API, and what their role lets them do: bearer keys over the users file.

With a users file (`serve --auth`), every request carries `Authorization: Bearer KEY`, a key issued
by `assistant user key NAME`; the key's user has the role they have in the app (farmer: chat and
the model list; trainer: also deleting adapters). A client whose keys keep failing waits as one
whose log-ins keep failing does (the same throttle, per client address): while it waits its keys
are not even checked, and it is told when to come back (429 with Retry-After).

Without a users file the app serves this machine only (`serve` refuses another --host), and so does
the API: no key is needed, a caller is a trainer as in the app, and a request whose connection does
not come from loopback is refused all the same (a port forwarded by mistake stays closed).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from api.errors import ApiError
from assistant.auth import ROLES, TRAINER, Access


@dataclass(frozen=True)
class Caller:
    name: str | None  # the key's user; None on a local app without a users file
    role: str
    client: str  # the client address (ui.clients), for logs and the throttle

    @property
    def limit_key(self) -> str | None:
        """Whose requests count together against the per-user limit (None: no limit, local use)."""
        return f"user {self.name}" if self.name else None


def authenticate(access: Access, client: str, peer: str | None, authorization: str | None) -> Caller:
    """The caller of a request, or ApiError 401 (no key, bad key), 403 (local-only app reached from
    elsewhere) or 429 (this client must wait after failed keys)."""
    if not access.enabled:
        if not _is_loopback(peer):
            raise ApiError(403, "this app has no users file, so it serves this machine only; start it with "
                                "--auth users.json to serve others", None, "loopback_only")
        return Caller(None, TRAINER, client)
    key = _bearer(authorization)
    if key is None:
        raise ApiError(401, "no API key: send 'Authorization: Bearer KEY' (a key comes from "
                            "`assistant user key NAME`)", None, "missing_api_key",
                       {"WWW-Authenticate": "Bearer"})
    user, wait = access.users.check_key(key, client)
    if wait > 0:
        seconds = math.ceil(wait)
        raise ApiError(429, f"too many failed API keys from your address: try again in {seconds} s", None,
                       "too_many_failed_keys", {"Retry-After": str(seconds)})
    if user is None:
        raise ApiError(401, "the API key is not valid (it may have been revoked or replaced)", None,
                       "invalid_api_key", {"WWW-Authenticate": "Bearer"})
    return Caller(user.name, user.role, client)


def require(caller: Caller, needed: str, action: str) -> None:
    """ApiError 403 unless the caller's role allows `action`."""
    if ROLES[caller.role] < ROLES[needed]:
        raise ApiError(403, f"your account ({caller.name}, {caller.role}) may not {action}; ask a trainer", None,
                       "insufficient_role")


def _bearer(header: str | None) -> str | None:
    scheme, _, key = (header or "").strip().partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def _is_loopback(peer: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((peer or "").strip())
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)
