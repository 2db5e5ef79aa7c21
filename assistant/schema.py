"""The database's schema, as the migrations that build it: each runs once, in order (assistant.store).

A migration is SQL (statements separated by semicolons, so none inside a comment) or a function of
the connection, for what SQL cannot do alone. Only ever append: a database at version N has run the
first N, and an app meeting a higher version than it knows refuses to open it.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata

__all__ = ["MIGRATIONS"]

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
    # 2: chats (owner: "user:NAME" with a users file, else "browser:ID"), their messages with the
    #    answer's metadata, and each owner's feedback on an answer (one row per owner and message)
    """CREATE TABLE chats (
           id TEXT PRIMARY KEY,
           owner TEXT NOT NULL,
           title TEXT NOT NULL DEFAULT '',
           created_at TEXT NOT NULL,
           updated_at TEXT NOT NULL
       );
       CREATE INDEX chats_owner ON chats (owner, updated_at);
       CREATE TABLE messages (
           id INTEGER PRIMARY KEY,
           chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
           role TEXT NOT NULL,
           content TEXT NOT NULL,
           shown TEXT NOT NULL DEFAULT '',      -- what the chat showed (label and sources included)
           question TEXT NOT NULL DEFAULT '',   -- an answer: what it answered (a follow-up joined)
           adapter TEXT,
           version INTEGER,
           checked INTEGER,
           withheld INTEGER NOT NULL DEFAULT 0,
           sources TEXT NOT NULL DEFAULT '[]',  -- JSON
           label TEXT NOT NULL DEFAULT '',
           completion_id TEXT,
           created_at TEXT NOT NULL
       );
       CREATE INDEX messages_chat ON messages (chat_id, id);
       CREATE UNIQUE INDEX messages_completion ON messages (completion_id) WHERE completion_id IS NOT NULL;
       CREATE TABLE feedback (
           id INTEGER PRIMARY KEY,
           message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
           owner TEXT NOT NULL,
           rating INTEGER NOT NULL DEFAULT 0,   -- 1 up, -1 down, 0 none (a correction alone)
           correction TEXT NOT NULL DEFAULT '', -- plain text, never rendered as markup
           created_at TEXT NOT NULL,
           updated_at TEXT NOT NULL,
           UNIQUE (message_id, owner)
       );""",
    # 3: the trainers' queue: one item per adapter and question (normalised), one ask per asker
    """CREATE TABLE queue_items (
           id INTEGER PRIMARY KEY,
           adapter TEXT NOT NULL,
           key TEXT NOT NULL,                   -- the question normalised: the same question, one item
           question TEXT NOT NULL,              -- as first asked
           status TEXT NOT NULL DEFAULT 'open', -- open | answered | dismissed | trained
           answer TEXT NOT NULL DEFAULT '',
           reason TEXT NOT NULL DEFAULT '',     -- why dismissed
           decided_by TEXT,
           decided_at TEXT,
           trained_version INTEGER,
           first_asked TEXT NOT NULL,
           last_asked TEXT NOT NULL,
           UNIQUE (adapter, key)
       );
       CREATE INDEX queue_items_status ON queue_items (status, last_asked);
       CREATE TABLE queue_asks (
           id INTEGER PRIMARY KEY,
           item_id INTEGER NOT NULL REFERENCES queue_items (id) ON DELETE CASCADE,
           asker TEXT NOT NULL,                 -- an owner key (anonymous CLI or API questions: "anonymous")
           kind TEXT NOT NULL,                  -- open (no checked answer) | flagged (a thumbs down or a correction)
           chat_id TEXT,
           message_id INTEGER,
           correction TEXT NOT NULL DEFAULT '',
           first_asked TEXT NOT NULL,
           last_asked TEXT NOT NULL,
           times INTEGER NOT NULL DEFAULT 1,
           UNIQUE (item_id, asker)
       );""",
    # 4: secrets the app makes once and keeps (the key of the browser id a browser keeps, so that a
    #    restart of the app still reads it)
    """CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    # 5: the questions recorded before the queue existed join it (a function: grouping is Python's)
    lambda db: _backfill_queue(db),
    # 6: one asker per person. Before, an API caller NAME asked as "NAME" (the service) and as
    #    "api:NAME" (their kept completions and ratings), apart from "user:NAME" in the chat tab: both
    #    become "user:NAME", merged with an ask already there (earliest first, latest last, flagged
    #    wins, the larger count: the two old keys counted the same asking twice)
    """CREATE TEMP TABLE rekeyed AS
           SELECT id, CASE WHEN asker LIKE 'api:%' THEN 'user:' || substr(asker, 5) ELSE 'user:' || asker END AS person
           FROM queue_asks
           WHERE asker NOT LIKE 'user:%' AND asker NOT LIKE 'browser:%' AND asker NOT IN ('anonymous', 'api:local');
       INSERT INTO queue_asks (item_id, asker, kind, chat_id, message_id, correction, first_asked, last_asked, times)
           SELECT a.item_id, r.person, min(a.kind), max(a.chat_id), max(a.message_id), max(a.correction),
                  min(a.first_asked), max(a.last_asked), max(a.times)
           FROM queue_asks a JOIN rekeyed r ON r.id = a.id WHERE true GROUP BY a.item_id, r.person
           ON CONFLICT (item_id, asker) DO UPDATE SET kind = min(kind, excluded.kind),
               chat_id = coalesce(chat_id, excluded.chat_id), message_id = coalesce(message_id, excluded.message_id),
               correction = CASE WHEN correction != '' THEN correction ELSE excluded.correction END,
               first_asked = min(first_asked, excluded.first_asked), last_asked = max(last_asked, excluded.last_asked),
               times = max(times, excluded.times);
       DELETE FROM queue_asks WHERE id IN (SELECT id FROM rekeyed);
       DROP TABLE rekeyed;
       UPDATE open_questions SET user = 'user:' || user
           WHERE user IS NOT NULL AND user NOT LIKE 'user:%' AND user NOT LIKE 'browser:%' AND user NOT LIKE 'api:%'""",
]


def _backfill_queue(db: sqlite3.Connection) -> None:
    """Migration 5: each logged open question whose asker has no ask on its item yet becomes one
    (idempotent). Frozen: the grouping key and the inserts are the queue's as they were at schema 5,
    copied here, so this migration does what it did then whatever assistant.questions becomes."""
    for row in db.execute("SELECT question, adapter, user, asked_at FROM open_questions ORDER BY id").fetchall():
        asker, question, stamp = row["user"] or "anonymous", str(row["question"]).strip()[:2000], row["asked_at"]
        key = _question_key_v5(question)
        known = db.execute("SELECT 1 FROM queue_asks a JOIN queue_items i ON i.id = a.item_id WHERE i.adapter = ? "
                           "AND i.key = ? AND a.asker = ?", (row["adapter"], key, asker))
        if known.fetchone() is not None:
            continue
        db.execute("INSERT INTO queue_items (adapter, key, question, first_asked, last_asked) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (adapter, key) DO UPDATE SET last_asked = max(last_asked, excluded.last_asked)",
                   (row["adapter"], key, question, stamp, stamp))
        item_id = db.execute("SELECT id FROM queue_items WHERE adapter = ? AND key = ?", (row["adapter"], key)).fetchone()[0]
        db.execute("INSERT INTO queue_asks (item_id, asker, kind, first_asked, last_asked) VALUES (?, ?, 'open', ?, ?)",
                   (item_id, asker, stamp, stamp))


def _question_key_v5(question: str) -> str:
    text = unicodedata.normalize("NFKC", str(question)).casefold()
    words = re.sub(r"[^\w]+", " ", text).split()
    return " ".join(words) or " ".join(text.split())
