"""What must last across restarts: SQLite in the data directory (`assistant.sqlite3`).

Today it holds the questions that got no checked answer, so that they reach the trainers who can
answer them in the next adapter version. One connection per call (SQLite connections are not to
be shared between threads, and the app answers from many); WAL so that readers never wait for a
writer; a busy timeout so that two processes (the app, a CLI command) take turns instead of
failing. The schema is versioned in code (`PRAGMA user_version`): each migration runs once, in
order, inside a transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

DB_FILE = "assistant.sqlite3"
MIGRATIONS = [
    # 1: questions without a checked answer (asked of an adapter whose policy is "checked only")
    """CREATE TABLE open_questions (
           id INTEGER PRIMARY KEY,
           asked_at TEXT NOT NULL,
           question TEXT NOT NULL,
           adapter TEXT NOT NULL,
           version INTEGER NOT NULL,
           reason TEXT NOT NULL,
           nearest TEXT NOT NULL DEFAULT '[]',  -- JSON: the closest pairs' questions and similarities
           user TEXT
       );
       CREATE INDEX open_questions_adapter ON open_questions (adapter, asked_at);""",
]
MAX_QUESTION_CHARS = 2000  # what is kept of one question: enough to answer it, bounded against abuse


class StoreError(Exception):
    """The database cannot be used; the message is for the user."""


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
        db.row_factory = sqlite3.Row
        return db

    def record_open_question(self, question: str, adapter: str, version: int, reason: str,
                             nearest: list[dict] | None = None, user: str | None = None) -> int:
        with closing(self._connect()) as db:
            cursor = db.execute(
                "INSERT INTO open_questions (asked_at, question, adapter, version, reason, nearest, user) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), question[:MAX_QUESTION_CHARS], adapter,
                 int(version), reason, json.dumps(nearest or []), user))
            return int(cursor.lastrowid)

    def open_questions(self, adapter: str | None = None, limit: int = 500) -> list[OpenQuestion]:
        """The newest first."""
        query = "SELECT * FROM open_questions" + (" WHERE adapter = ?" if adapter else "") + " ORDER BY id DESC LIMIT ?"
        with closing(self._connect()) as db:
            rows = db.execute(query, ((adapter,) if adapter else ()) + (int(limit),)).fetchall()
        return [OpenQuestion(r["id"], r["asked_at"], r["question"], r["adapter"], r["version"], r["reason"],
                             json.loads(r["nearest"]), r["user"]) for r in rows]


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
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
