"""Who may use the app, and as what: a users file with hashed passwords and roles, login limits.

The file (`assistant serve --auth FILE`) is JSON, written by `assistant user add`:

    {"users": {"amina": {"role": "trainer", "password": "scrypt$16384$8$1$<salt hex>$<hash hex>"}}}

Roles: `farmer` chats; `trainer` may also train, export and delete adapters. Passwords are stored
only as salted scrypt hashes, compared in constant time. Failed log-ins slow down the client
address that fails (assistant.throttle), never the account: the right password from anywhere else
still works. User names are case-insensitive: `normal_name` is the one place that says so, and
every lookup goes through it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.throttle import LoginThrottle, delay_after

ROLES = {"farmer": 0, "trainer": 1}
FARMER, TRAINER = "farmer", "trainer"
MAX_PASSWORD = 1024  # longer is refused unhashed: no real password is, and scrypt over MBs is work
_SCRYPT = (2 ** 14, 8, 1)  # n, r, p: ~50 ms and 16 MB per check on this machine's cores
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def normal_name(name: str | None) -> str:
    """The one spelling of a user name: what `assistant user add` stores and every lookup uses."""
    return (name or "").strip().lower()


class AuthError(Exception):
    """A users file or a user request that cannot be honoured; the message says why."""


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AuthError("a password needs at least 8 characters")
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(digest))


@dataclass
class User:
    name: str
    role: str
    password: str  # the scrypt hash, never the password


class Users:
    """The users file, read once at start; `check` is Gradio's login callback."""

    def __init__(self, users: dict[str, User], path: Path | None = None):
        self.users, self.path = users, path
        self.throttle = LoginThrottle()

    @classmethod
    def load(cls, path: Path) -> Users:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AuthError(f"users file {path} does not exist; create it with `assistant user add NAME`") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise AuthError(f"users file {path} is not readable JSON ({exc})") from None
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise AuthError(f"users file {path} lists no users (expected {{\"users\": {{name: {{role, password}}}}}})")
        users = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not _USER.fullmatch(str(name)):
                raise AuthError(f"users file {path}: bad entry for user {name!r}")
            if entry.get("role") not in ROLES:
                raise AuthError(f"users file {path}: user {name!r} has role {entry.get('role')!r}; "
                                f"roles are {', '.join(ROLES)}")
            if not str(entry.get("password", "")).startswith("scrypt$"):
                raise AuthError(f"users file {path}: user {name!r} has no scrypt password hash "
                                "(plain-text passwords are refused; use `assistant user add`)")
            users[name] = User(name, entry["role"], entry["password"])
        return cls(users, path)

    def role(self, name: str | None) -> str | None:
        user = self.users.get(normal_name(name))
        return user.role if user else None

    def check(self, name: str, password: str, client: str = "local", now: float | None = None) -> bool:
        """Gradio's log-in callback: True lets the user in. A client that keeps failing waits
        (assistant.throttle); while it waits its attempts are refused without being checked."""
        now = time.monotonic() if now is None else now
        if self.throttle.begin(client, now):
            return False  # not even checked: this client is waiting after its failures
        ok = False
        try:
            name, password = normal_name(name), password or ""
            if _USER.fullmatch(name) and len(password) <= MAX_PASSWORD:  # else refused, never hashed
                user = self.users.get(name)
                ok = user is not None and verify_password(password, user.password)
                if user is None:  # spend the same time as a real check, so names cannot be probed by timing
                    verify_password(password, _DUMMY_HASH)
        finally:
            self.throttle.end(client, ok, now)
        if not ok and (wait := delay_after(self.throttle.failures(client))):
            print(f"log-in: {client} has failed {self.throttle.failures(client)} times; its next attempt is "
                  f"checked in {wait:.0f} s at the earliest", file=sys.stderr, flush=True)
        return ok


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def add_user(path: Path, name: str, role: str, password: str) -> None:
    """Create or update one user in the users file (atomically; the file is readable by its owner only)."""
    name = normal_name(name)
    if not _USER.fullmatch(name):
        raise AuthError("a user name is 1-64 characters: lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    path = Path(path)
    data = {"users": {}}
    if path.exists():
        data = {"users": {n: {"role": u.role, "password": u.password} for n, u in Users.load(path).users.items()}}
    data["users"][name] = {"role": role, "password": hash_password(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


class Access:
    """Role checks for the app's handlers; without a users file everyone is a trainer (local use)."""

    def __init__(self, users: Users | None = None):
        self.users = users

    @property
    def enabled(self) -> bool:
        return self.users is not None

    def role(self, username: str | None) -> str | None:
        if self.users is None:
            return TRAINER
        return self.users.role(username)

    def allows(self, username: str | None, needed: str) -> bool:
        role = self.role(username)
        return role is not None and ROLES[role] >= ROLES[needed]

    def denial(self, username: str | None, needed: str, action: str) -> str | None:
        """None when allowed, else the message to show."""
        if self.allows(username, needed):
            return None
        if self.role(username) is None:
            return "Please log in first."
        return f"Your account ({normal_name(username)}, {self.role(username)}) may not {action}; ask a trainer."
