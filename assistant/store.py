"""What must last across restarts: SQLite in the data directory (`assistant.sqlite3`).

It holds the questions that got no checked answer (the raw log), the chats, their messages and the
feedback on them (`assistant.history`), and the trainers' queue of questions to answer
(`assistant.questions`, which also writes the raw log): this module is the one storage seam, those
two speak SQL through it and it imports neither. One connection per call (SQLite connections are
not to be shared between threads, and the app answers from many); WAL so that readers never wait
for a writer; a busy timeout so that two processes (the app, a CLI command) take turns instead of
failing. The schema is versioned in code (`PRAGMA user_version`): each migration runs once, in
order, inside a transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from assistant.schema import MIGRATIONS

DB_FILE = "assistant.sqlite3"
MAX_QUESTION_CHARS = 2000  # what is kept of one question: enough to answer it, bounded against abuse


class StoreError(Exception):
    """The database cannot be used; the message is for the user."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class OpenQuestion:
    id: int
    asked_at: str
    question: str
    adapter: str
    version: int
    reason: str
    nearest: list[dict]
    user: str | None


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._migrated = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._migrated, closing(self._connect()) as db:
            _migrate(db)

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        try:
            return cls(Path(data_dir) / DB_FILE)
        except sqlite3.Error as exc:
            raise StoreError(f"the database {Path(data_dir) / DB_FILE} cannot be used ({exc})") from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)  # autocommit; transactions explicit
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, never corrupt
        db.execute("PRAGMA foreign_keys=ON")
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (each statement sees a consistent snapshot)."""
        try:
            with closing(self._connect()) as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(_plain(exc)) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside is written, or nothing is (a full disk included)."""
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")  # the write lock first: a compare-and-set sees the latest row
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # SQLite itself rolls back on some errors (a full disk)
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(_plain(exc)) from exc

    def secret(self, name: str) -> str:
        """A random secret made the first time it is asked for, the same ever after (all processes)."""
        import secrets

        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, secrets.token_urlsafe(32)))
            return db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[0]

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the whole database while the app runs (SQLite's online backup)."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / DB_FILE
        if dest.resolve() == self.path.resolve():
            raise StoreError("the backup must go to another file than the database itself")
        tmp = dest.with_name(dest.name + ".partial")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, closing(sqlite3.connect(tmp)) as out:
                db.backup(out)
            tmp.replace(dest)  # a reader of `dest` never sees half a copy
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"could not write the backup to {dest}: {_plain(exc)}") from exc
        return dest

    def open_questions(self, adapter: str | None = None, limit: int = 500) -> list[OpenQuestion]:
        """The newest first."""
        query = "SELECT * FROM open_questions" + (" WHERE adapter = ?" if adapter else "") + " ORDER BY id DESC LIMIT ?"
        with self.read() as db:
            rows = db.execute(query, ((adapter,) if adapter else ()) + (int(limit),)).fetchall()
        return [OpenQuestion(r["id"], r["asked_at"], r["question"], r["adapter"], r["version"], r["reason"],
                             json.loads(r["nearest"]), r["user"]) for r in rows]


def _plain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "full" in text:
        return "the disk is full: nothing was written (free some space and try again)"
    if "locked" in text or "busy" in text:
        return "the database is busy: try again in a moment"
    return f"the database cannot be used ({text})"


def _migrate(db: sqlite3.Connection) -> None:
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise sqlite3.DatabaseError(f"the database is from a newer version of the app (schema {current})")
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")  # one process migrates; another waits, then finds it done
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] >= number:
                db.execute("ROLLBACK")
                continue
            if callable(script):
                script(db)
            else:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
