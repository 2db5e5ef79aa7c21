"""Who may use the app, and as what: a users file with hashed passwords and roles, login limits.

The file (`assistant serve --auth FILE`) is JSON, written by `assistant user add`:

    {"users": {"amina": {"role": "trainer", "password": "scrypt$16384$8$1$<salt hex>$<hash hex>",
                         "api_key": "sha256$<hash hex>"}}}

Roles: `farmer` chats; `trainer` may also train, export and delete adapters. Passwords are stored
only as salted scrypt hashes, compared in constant time. An API key (`assistant user key NAME`,
for the OpenAI-compatible API) is random and stored only as its sha256; one per user, re-issuing
replaces it, `--revoke` removes it. Failed log-ins slow down the client
address that fails (assistant.throttle), never the account: the right password from anywhere else
still works. User names are case-insensitive: `normal_name` is the one place that says so, and
every lookup goes through it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.throttle import LoginThrottle, delay_after

ROLES = {"farmer": 0, "trainer": 1}
FARMER, TRAINER = "farmer", "trainer"
MAX_PASSWORD = 1024  # longer is refused unhashed: no real password is, and scrypt over MBs is work
_SCRYPT = (2 ** 14, 8, 1)  # n, r, p: ~50 ms and 16 MB per check on this machine's cores
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEY_HASH = re.compile(r"sha256\$[0-9a-f]{64}")
KEY_PREFIX = "fa-"  # "field assistant": tells a leaked key's origin at a glance (secret scanners)


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
    api_key: str | None = None  # "sha256$<hex>" of the user's API key, never the key itself


class Users:
    """The users file; `check` is Gradio's login callback. Read again whenever it changes, so a user
    added, a role changed, a password reset or a key issued or revoked counts at once, without a
    restart (the file is written atomically: read whole or not at all)."""

    def __init__(self, users: dict[str, User], path: Path | None = None):
        self.users, self.path = users, path
        # One throttle for failed log-ins and failed API keys: a guesser gains nothing by alternating.
        self.throttle = LoginThrottle()
        self._by_key = {u.api_key: u for u in users.values() if u.api_key}
        self._stamp = _stamp(path)
        self._reading = threading.Lock()  # one reader of a changed file at a time, so an older read never wins

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
            key = entry.get("api_key")
            if key is not None and not (isinstance(key, str) and _KEY_HASH.fullmatch(key)):
                raise AuthError(f"users file {path}: user {name!r} has a malformed api_key (expected sha256$<hex>; "
                                "issue a new one with `assistant user key`)")
            users[name] = User(name, entry["role"], entry["password"], key)
        return cls(users, path)

    def by_key(self, key: str | None) -> User | None:
        """The user whose API key this is, or None. A dict lookup by the key's sha256 is safe against
        timing: what a probe could learn is about the hash, and a preimage of it is out of reach."""
        if not key or len(key) > MAX_PASSWORD:
            return None
        return self._by_key.get(hash_key(key))

    def check_key(self, key: str | None, client: str, now: float | None = None) -> tuple[User | None, float]:
        """(the key's user, 0) or (None, 0) for a bad key, counted as a failure of `client` like a wrong
        password; (None, seconds) while the client must wait after its failures: not even checked."""
        now = time.monotonic() if now is None else now
        wait = self.throttle.wait_s(client, now)
        if wait > 0:
            return None, wait
        self._refresh()
        user = self.by_key(key)
        if user is None:
            self.throttle.begin(client, now)  # begin first: it keeps the table within MAX_CLIENTS
            self.throttle.end(client, False, now)
            if delay := delay_after(self.throttle.failures(client)):
                print(f"api key: {client} has failed {self.throttle.failures(client)} times; its next key is "
                      f"checked in {delay:.0f} s at the earliest", file=sys.stderr, flush=True)
        return user, 0.0

    def role(self, name: str | None) -> str | None:
        self._refresh()
        user = self.users.get(normal_name(name))
        return user.role if user else None

    def _refresh(self) -> None:
        """Read the file again if it changed since last read (a stat a call). One that fails to load
        (a bad hand edit, a file emptied or deleted) leaves everyone as they were, and says why on
        stderr once per change: a broken file never opens the app, nor locks everyone out."""
        if _stamp(self.path) == self._stamp:
            return
        with self._reading:
            stamp = _stamp(self.path)  # again, under the lock: another thread may have read it meanwhile
            if stamp is None or stamp == self._stamp:
                return
            try:
                fresh = Users.load(self.path).users
            except Exception as exc:  # noqa: BLE001 - whatever a hand edit did, the users read before still apply
                print(f"users file: not reloaded, the users read before still apply: {exc}", file=sys.stderr, flush=True)
            else:
                self.users, self._by_key = fresh, {u.api_key: u for u in fresh.values() if u.api_key}
            self._stamp = stamp

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
                self._refresh()
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


def _stamp(path: Path | None):
    try:
        stat = Path(path).stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def add_user(path: Path, name: str, role: str, password: str) -> None:
    """Create or update one user in the users file (atomically; the file is readable by its owner only).
    An existing user keeps their API key."""
    name = normal_name(name)
    if not _USER.fullmatch(name):
        raise AuthError("a user name is 1-64 characters: lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    path = Path(path)
    users = Users.load(path).users if path.exists() else {}
    old = users.get(name)
    users[name] = User(name, role, hash_password(password), old.api_key if old else None)
    _write(path, users)


def hash_key(key: str) -> str:
    """How an API key is stored. sha256, not scrypt: a key is 256 random bits, so there is no
    dictionary to try and nothing for a slow hash to protect; a slow hash would only make every API
    request pay ~50 ms (and a key check could not be a dict lookup)."""
    return "sha256$" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def issue_key(path: Path, name: str) -> str:
    """A new API key for an existing user, replacing their old one; returns the key (shown once)."""
    path, name = Path(path), normal_name(name)
    users = Users.load(path).users
    if name not in users:
        raise AuthError(f"no user {name!r} in {path}; add them first with `assistant user add {name}`")
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    users[name].api_key = hash_key(key)
    _write(path, users)
    return key


def revoke_key(path: Path, name: str) -> bool:
    """Remove a user's API key; False when they had none."""
    path, name = Path(path), normal_name(name)
    users = Users.load(path).users
    if name not in users:
        raise AuthError(f"no user {name!r} in {path}")
    had = users[name].api_key is not None
    users[name].api_key = None
    _write(path, users)
    return had


def _write(path: Path, users: dict[str, User]) -> None:
    from assistant.fsutil import write_json_atomic

    entries = {}
    for n, u in users.items():
        entries[n] = {"role": u.role, "password": u.password, **({"api_key": u.api_key} if u.api_key else {})}
    write_json_atomic(path, {"users": entries}, mode=0o600)  # secrets: readable by the owner only


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
