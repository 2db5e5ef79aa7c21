"""The trainers' queue: questions that got no checked answer and answers people flagged.

One item per adapter and question (the same question asked in other words of case, spacing or
punctuation is the same item), and one *ask* per asker on it: the same person flagging the same
answer 500 times counts once (with `times` = 500). An item is `open` until a trainer answers or
dismisses it, and open again if a trainer reopens it; those decisions are compare-and-set on the
status, so of two trainers acting on one item a second apart the second is told what the first
did, and nothing is overwritten. Answered items become training pairs for the adapter's next
version (`answered_pairs`), and `trained` once that version serves: whenever the serving version
changes, `sync_trained` makes `trained` mean "the serving version holds it" (a rollback returns
items to `answered`).

Everything here is text: answers, reasons and corrections are stored as typed, never as markup;
the front ends escape them when they show them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, field

from assistant.store import MAX_QUESTION_CHARS, Store, StoreError, now

ANONYMOUS = "anonymous"  # the asker of a CLI or API question without a user
STATUSES = ("open", "answered", "dismissed", "trained")
MAX_ANSWER_CHARS = 4000  # a trainer's answer: a Q&A pair's answer, not a document
MAX_REASON_CHARS = 500
MAX_CORRECTION_CHARS = 4000


class QueueError(ValueError):
    """A request on the queue that cannot be done; the message is for the user, nothing was changed."""


@dataclass
class Ask:
    asker: str
    kind: str  # open | flagged
    chat_id: str | None
    message_id: int | None
    correction: str
    times: int
    first_asked: str
    last_asked: str


@dataclass
class Item:
    id: int
    adapter: str
    question: str
    status: str
    answer: str
    reason: str
    decided_by: str | None
    decided_at: str | None
    trained_version: int | None
    first_asked: str
    last_asked: str
    asks: list[Ask] = field(default_factory=list)

    @property
    def askers(self) -> int:
        return len(self.asks)

    @property
    def flagged(self) -> bool:
        return any(a.kind == "flagged" for a in self.asks)

    @property
    def correction(self) -> str:
        """The newest correction a farmer suggested: a trainer's starting point."""
        return next((a.correction for a in sorted(self.asks, key=lambda a: a.last_asked, reverse=True)
                     if a.correction), "")


def normalise(question: str) -> str:
    """The grouping key: case, accents' forms, punctuation and spacing do not make another question."""
    text = unicodedata.normalize("NFKC", str(question)).casefold()
    words = re.sub(r"[^\w]+", " ", text).split()
    return " ".join(words) or " ".join(text.split())


def bounded(text, limit: int, what: str, required: bool = True) -> str:
    """`text` stripped, or a QueueError saying what is wrong with it."""
    if not isinstance(text, str):
        raise QueueError(f"the {what} must be text")
    text = text.strip()
    if required and not text:
        raise QueueError(f"the {what} is empty")
    if len(text) > limit:
        raise QueueError(f"the {what} is {len(text):,} characters; at most {limit:,} are accepted — shorten it")
    if "\x00" in text:
        raise QueueError(f"the {what} contains a NUL character")
    return text


def record_ask_in(db: sqlite3.Connection, adapter: str, question: str, asker: str, kind: str,
                  chat_id: str | None = None, message_id: int | None = None, correction: str = "",
                  count: bool = True, at: str | None = None) -> int:
    """Inside the caller's transaction: the item for this question (made or found) and this asker's
    ask. `count` False: the same asking seen again (the chat linking what the service recorded);
    `at`: when it was asked, if not now."""
    question = str(question).strip()[:MAX_QUESTION_CHARS]
    stamp = at or now()
    db.execute("INSERT INTO queue_items (adapter, key, question, first_asked, last_asked) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (adapter, key) DO UPDATE SET last_asked = max(last_asked, excluded.last_asked)",
               (adapter, normalise(question), question, stamp, stamp))
    item_id = db.execute("SELECT id FROM queue_items WHERE adapter = ? AND key = ?",
                         (adapter, normalise(question))).fetchone()[0]
    db.execute("INSERT INTO queue_asks (item_id, asker, kind, chat_id, message_id, correction, first_asked, last_asked) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, asker) DO UPDATE SET "
               "last_asked = max(last_asked, excluded.last_asked), times = times + ?, "
               "kind = CASE WHEN excluded.kind = 'flagged' THEN 'flagged' ELSE kind END, "
               "chat_id = coalesce(excluded.chat_id, chat_id), message_id = coalesce(excluded.message_id, message_id), "
               "correction = CASE WHEN excluded.correction != '' THEN excluded.correction ELSE correction END",
               (item_id, asker, kind, chat_id, message_id, correction, stamp, stamp, int(count)))
    return int(item_id)


def record_open_question(store: Store, question: str, adapter: str, version: int, reason: str,
                         nearest: list[dict] | None = None, user: str | None = None) -> int:
    """A question without a checked answer: the raw log (Store.open_questions), and the queue item for
    it, counted once per asker, in one transaction. Returns the log row's id."""
    with store.write() as db:
        cursor = db.execute(
            "INSERT INTO open_questions (asked_at, question, adapter, version, reason, nearest, user) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now(), question[:MAX_QUESTION_CHARS], adapter, int(version), reason, json.dumps(nearest or []), user))
        record_ask_in(db, adapter, question, user or ANONYMOUS, "open")
        return int(cursor.lastrowid)


def record_ask(store: Store, adapter: str, question: str, asker: str, kind: str = "open", chat_id: str | None = None,
               message_id: int | None = None, correction: str = "") -> int:
    """Add (or count again) one asker's question to the queue; returns the item's id."""
    if kind not in ("open", "flagged"):
        raise QueueError(f"unknown kind {kind!r} (open or flagged)")
    correction = bounded(correction, MAX_CORRECTION_CHARS, "correction", required=False)
    with store.write() as db:
        return record_ask_in(db, adapter, question, asker or ANONYMOUS, kind, chat_id, message_id, correction)


def items(store: Store, status: str | None = "open", adapter: str | None = None, limit: int = 200) -> list[Item]:
    """Items with this status (None: all), the most asked first, then the most recently asked."""
    if status is not None and status not in STATUSES:
        raise QueueError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    where, params = [], []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if adapter:
        where.append("adapter = ?")
        params.append(adapter)
    query = ("SELECT i.*, (SELECT count(*) FROM queue_asks a WHERE a.item_id = i.id) AS n FROM queue_items i"
             + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY n DESC, last_asked DESC, id DESC LIMIT ?")
    with store.read() as db:
        rows = db.execute(query, (*params, int(limit))).fetchall()
        return [_item(db, row) for row in rows]


def get(store: Store, item_id) -> Item:
    with store.read() as db:
        return _get(db, item_id)


def answer(store: Store, item_id, text: str, by: str) -> Item:
    """Answer an open item (a farmer's correction may be the text); QueueError if it is no longer open."""
    text = bounded(text, MAX_ANSWER_CHARS, "answer")
    return _decide(store, item_id, "answered", by, answer=text)


def dismiss(store: Store, item_id, reason: str, by: str) -> Item:
    """Dismiss an open item with a reason (out of scope, a duplicate, not a question…)."""
    reason = bounded(reason, MAX_REASON_CHARS, "reason for dismissing")
    return _decide(store, item_id, "dismissed", by, reason=reason)


def decide_alike(store: Store, decided: Item, others, by: str) -> tuple[list[Item], list[str]]:
    """Answer or dismiss `others` (items asking what `decided` asks, in other words) as `decided`
    was: its answer, or its reason. Each on its own: one another trainer decided meanwhile, or no
    such item, is reported and the rest still go. Returns (the items decided, the refusals)."""
    done, refused = [], []
    for other in others:
        try:
            done.append(answer(store, other, decided.answer, by) if decided.status == "answered"
                        else dismiss(store, other, decided.reason, by))
        except (QueueError, StoreError) as exc:
            refused.append(str(exc))
    return done, refused


def reopen(store: Store, item_id, by: str) -> Item:
    """Open a decided item again: an answer to correct (its text stays, the starting point of the
    new one), a dismissal taken back. A trained item's answer serves until the next version trains
    the corrected one. QueueError if it is open already (another trainer reopened it first)."""
    item_id = _id(item_id)
    with store.write() as db:
        changed = db.execute("UPDATE queue_items SET status = 'open', reason = '', trained_version = NULL, "
                             "decided_by = ?, decided_at = ? WHERE id = ? AND status != 'open'",
                             (by, now(), item_id)).rowcount
        item = _get(db, item_id)
    if not changed:
        raise QueueError(f"item {item_id} is open already{_reopened_by(item)}; nothing was changed")
    return item


def answered_pairs(store: Store, adapter_name: str) -> list[dict]:
    """The answered, not yet trained items of one adapter as training pairs, oldest decision first:
    [{"question", "answer", "item_ids", "answered_by"}]. Items whose questions differ only in
    case, spacing or punctuation are one item already; `item_ids` is what a version's lineage records."""
    with store.read() as db:
        rows = db.execute("SELECT id, question, answer, decided_by FROM queue_items WHERE adapter = ? AND "
                          "status = 'answered' ORDER BY decided_at, id", (adapter_name,)).fetchall()
    return [{"question": r["question"], "answer": r["answer"], "item_ids": [int(r["id"])],
             "answered_by": r["decided_by"]} for r in rows]


def sync_trained(store: Store, adapter_name: str, held: dict[int, int]) -> tuple[int, int]:
    """After a version of the adapter begins to serve (promoted, rolled back, or through its gate):
    `held` maps each queue item its data holds, through its lineage and its ancestors', to the
    version that trained it. Those answered or trained become trained with that version; trained
    items it does not hold go back to answered, so that a rollback past the version that had them
    shows them unanswered to their askers and the next version trains them again. An item a trainer
    reopened or dismissed since stays as they left it. Returns (marked trained, back to answered)."""
    with store.write() as db:
        rows = db.execute("SELECT id, status, trained_version FROM queue_items WHERE adapter = ? AND "
                          "status IN ('answered', 'trained')", (adapter_name,)).fetchall()
        marked = reopened = 0
        for row in rows:
            version = held.get(int(row["id"]))
            if version is not None and (row["status"], row["trained_version"]) != ("trained", version):
                db.execute("UPDATE queue_items SET status = 'trained', trained_version = ? WHERE id = ?",
                           (int(version), row["id"]))
                marked += 1
            elif version is None and row["status"] == "trained":
                db.execute("UPDATE queue_items SET status = 'answered', trained_version = NULL WHERE id = ?",
                           (row["id"],))
                reopened += 1
    return marked, reopened


def _decide(store: Store, item_id, status: str, by: str, answer: str = "", reason: str = "") -> Item:
    item_id = _id(item_id)
    with store.write() as db:
        changed = db.execute("UPDATE queue_items SET status = ?, answer = ?, reason = ?, decided_by = ?, decided_at = ? "
                             "WHERE id = ? AND status = 'open'", (status, answer, reason, by, now(), item_id)).rowcount
        item = _get(db, item_id)
    if not changed:
        raise QueueError(f"item {item_id} is no longer open: {describe_decision(item)}; nothing was changed")
    return item


def describe_decision(item: Item) -> str:
    if item.status == "answered":
        return f"{item.decided_by or 'someone'} answered it at {item.decided_at}"
    if item.status == "dismissed":
        return f"{item.decided_by or 'someone'} dismissed it at {item.decided_at} ({item.reason})"
    if item.status == "trained":
        return f"answered by {item.decided_by or 'someone'} and trained into v{item.trained_version}"
    return "open" + _reopened_by(item)


def _reopened_by(item: Item) -> str:
    return f" (reopened by {item.decided_by} at {item.decided_at})" if item.status == "open" and item.decided_by else ""


def _id(item_id) -> int:
    try:
        return int(str(item_id).strip().lstrip("#"))
    except ValueError:
        raise QueueError(f"{str(item_id)[:40]!r} is not an item number") from None


def _get(db: sqlite3.Connection, item_id) -> Item:
    row = db.execute("SELECT * FROM queue_items WHERE id = ?", (_id(item_id),)).fetchone()
    if row is None:
        raise QueueError(f"there is no item {_id(item_id)} in the questions to answer")
    return _item(db, row)


def _item(db: sqlite3.Connection, row) -> Item:
    asks = [Ask(a["asker"], a["kind"], a["chat_id"], a["message_id"], a["correction"], a["times"], a["first_asked"],
                a["last_asked"])
            for a in db.execute("SELECT * FROM queue_asks WHERE item_id = ? ORDER BY first_asked, id", (row["id"],))]
    return Item(row["id"], row["adapter"], row["question"], row["status"], row["answer"], row["reason"],
                row["decided_by"], row["decided_at"], row["trained_version"], row["first_asked"], row["last_asked"], asks)
