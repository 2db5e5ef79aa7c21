"""Chats that last: each owner's conversations, their messages with the answer's metadata, and
the owner's feedback on an answer (👍 / 👎 and a correction).

An owner is `user:NAME` when the app has a users file, else `browser:ID` (a random id the browser
keeps), or `api:NAME` for completions of the API (kept apart, so that a tool calling the API does
not fill a farmer's chat list); every read and write names its owner, and a chat of another owner
is "not found", never shown. A thumbs down or a correction also puts the answer's question in the
trainers' queue (`assistant.questions`) under the *asker*: the person, `user:NAME` whichever way
they asked (chat tab or API key), so one person is counted once however often they flag it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from assistant import questions
from assistant.questions import MAX_CORRECTION_CHARS, bounded
from assistant.store import Store, now

MAX_TITLE_CHARS = 80
MAX_MESSAGE_CHARS = 40_000  # what is kept of one message; the model's context is far shorter
MAX_CHATS_LISTED = 100
OWNER = re.compile(r"(user:[a-z0-9._@-]{1,64}|browser:[0-9a-f]{32}|api:[a-z0-9._@-]{1,64})")  # api: API callers
NO_ADAPTER = "none"  # the queue's name for answers of the bare base


class HistoryError(ValueError):
    """A request on the history that cannot be done; the message is for the user, nothing changed."""


@dataclass
class Chat:
    id: str
    title: str
    updated_at: str
    answered: int = 0  # the owner's questions in it that trainers answered and trained since


@dataclass
class Message:
    id: int
    role: str
    content: str  # what the model said (or the question): the next prompt is built from these
    shown: str  # what the chat showed: label, trust mark and sources included
    question: str
    adapter: str | None
    version: int | None
    checked: bool | None
    withheld: bool
    sources: list
    label: str
    completion_id: str | None
    created_at: str
    rating: int = 0
    correction: str = ""


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not OWNER.fullmatch(owner):
        raise HistoryError("this browser or user has no chat history (no valid owner id)")
    return owner


def new_chat(store: Store, owner: str, title: str = "") -> str:
    check_owner(owner)
    chat_id, stamp = uuid.uuid4().hex, now()
    with store.write() as db:
        db.execute("INSERT INTO chats (id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                   (chat_id, owner, _title(title), stamp, stamp))
    return chat_id


def chats(store: Store, owner: str) -> list[Chat]:
    """The owner's chats, the most recent first."""
    check_owner(owner)
    with store.read() as db:
        rows = db.execute(
            "SELECT c.id, c.title, c.updated_at, (SELECT count(DISTINCT a.item_id) FROM queue_asks a JOIN queue_items i "
            "ON i.id = a.item_id WHERE a.chat_id = c.id AND a.asker = c.owner AND i.status = 'trained') AS answered "
            "FROM chats c WHERE c.owner = ? ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
            (owner, MAX_CHATS_LISTED)).fetchall()
    return [Chat(r["id"], r["title"], r["updated_at"], r["answered"]) for r in rows]


def messages(store: Store, owner: str | None, chat_id: str) -> list[Message]:
    """A chat's messages in order, with the owner's feedback. `owner` None: a trainer reading the
    conversation a queue item came from (the caller checks the role)."""
    with store.read() as db:
        _owned(db, owner, chat_id)
        rows = db.execute("SELECT m.*, f.rating, f.correction FROM messages m LEFT JOIN feedback f ON f.message_id = m.id "
                          "AND f.owner = (SELECT owner FROM chats WHERE id = m.chat_id) WHERE m.chat_id = ? ORDER BY m.id",
                          (chat_id,)).fetchall()
    return [_message(r) for r in rows]


def add_turn(store: Store, owner: str, chat_id: str | None, question: str, answer: dict,
             asker: str | None = None) -> tuple[str, int, int]:
    """The question and its answer, written together (never one without the other). `answer`:
    content, shown, question, adapter, version, checked, withheld, sources, label, completion_id.
    A chat id that is not the owner's (or none) starts a new chat. Returns (chat id, question's
    message id, answer's message id); a question without a checked answer is linked to its queue
    item, under `asker` (default: the owner), the key the service recorded the question under."""
    check_owner(owner)
    asker = check_owner(asker or owner)
    stamp = now()
    with store.write() as db:
        if not chat_id or db.execute("SELECT 1 FROM chats WHERE id = ? AND owner = ?", (chat_id, owner)).fetchone() is None:
            chat_id = uuid.uuid4().hex
            db.execute("INSERT INTO chats (id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                       (chat_id, owner, _title(question), stamp, stamp))
        else:
            db.execute("UPDATE chats SET updated_at = ?, title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                       (stamp, _title(question), chat_id))
        asked = _insert(db, chat_id, "user", question, question, {}, stamp)
        answered = _insert(db, chat_id, "assistant", answer.get("content", ""), answer.get("shown", ""), answer, stamp)
        if answer.get("withheld") and answer.get("adapter"):
            questions.record_ask_in(db, answer["adapter"], answer.get("question") or question, asker, "open",
                                    chat_id, answered, count=False)  # the service counted it already
    return chat_id, asked, answered


def delete_chat(store: Store, owner: str, chat_id: str) -> None:
    """The chat, its messages and feedback go; queue items keep the question, without the link."""
    with store.write() as db:
        _owned(db, owner, chat_id)
        db.execute("UPDATE queue_asks SET chat_id = NULL, message_id = NULL WHERE chat_id = ?", (chat_id,))
        db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))


def rate(store: Store, owner: str, message_id, rating: int, correction: str = "", asker: str | None = None) -> Message:
    """The owner's 👍 (1), 👎 (-1) or neither (0) on one of their answers, with an optional
    correction (plain text, bounded). A 👎 or a correction flags the answer for the trainers,
    under `asker` (default: the owner)."""
    check_owner(owner)
    asker = check_owner(asker or owner)
    if rating not in (-1, 0, 1):
        raise HistoryError("a rating is 1 (👍), -1 (👎) or 0 (none)")
    try:
        correction = bounded(correction or "", MAX_CORRECTION_CHARS, "correction", required=False)
    except questions.QueueError as exc:
        raise HistoryError(str(exc)) from None
    stamp = now()
    with store.write() as db:
        row = db.execute("SELECT m.* FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.id = ? AND c.owner = ? "
                         "AND m.role = 'assistant'", (_int(message_id), owner)).fetchone()
        if row is None:
            raise HistoryError(f"there is no answer {str(message_id)[:20]} in your chats")
        db.execute("INSERT INTO feedback (message_id, owner, rating, correction, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, owner) DO UPDATE SET rating = excluded.rating, "
                   "correction = CASE WHEN excluded.correction != '' THEN excluded.correction ELSE correction END, "
                   "updated_at = excluded.updated_at", (row["id"], owner, rating, correction, stamp, stamp))
        if rating < 0 or correction:
            questions.record_ask_in(db, row["adapter"] or NO_ADAPTER, row["question"] or _asked(db, row), asker,
                                    "flagged", row["chat_id"], row["id"], correction)
        db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (stamp, row["chat_id"]))
    return next(m for m in messages(store, owner, row["chat_id"]) if m.id == row["id"])


def message_of_completion(store: Store, completion_id: str) -> tuple[str, int] | None:
    """(owner, message id) of the answer an API completion id names, or None."""
    with store.read() as db:
        row = db.execute("SELECT c.owner, m.id FROM messages m JOIN chats c ON c.id = m.chat_id "
                         "WHERE m.completion_id = ?", (str(completion_id)[:100],)).fetchone()
    return (row["owner"], row["id"]) if row else None


def _owned(db, owner: str | None, chat_id: str) -> None:
    row = db.execute("SELECT owner FROM chats WHERE id = ?", (str(chat_id)[:64],)).fetchone()
    if row is None or (owner is not None and row["owner"] != owner):
        raise HistoryError("that chat is not among your chats (deleted, or never yours)")


def _insert(db, chat_id: str, role: str, content: str, shown: str, meta: dict, stamp: str) -> int:
    checked = meta.get("checked")
    return int(db.execute(
        "INSERT INTO messages (chat_id, role, content, shown, question, adapter, version, checked, withheld, sources, "
        "label, completion_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (chat_id, role, str(content)[:MAX_MESSAGE_CHARS], str(shown)[:MAX_MESSAGE_CHARS],
         str(meta.get("question") or "")[:MAX_MESSAGE_CHARS], meta.get("adapter"), meta.get("version"),
         None if checked is None else int(bool(checked)), int(bool(meta.get("withheld"))),
         json.dumps(meta.get("sources") or []), str(meta.get("label") or ""), meta.get("completion_id"), stamp)).lastrowid)


def _asked(db, answer_row) -> str:
    """The question an answer answered: the user message just before it."""
    row = db.execute("SELECT content FROM messages WHERE chat_id = ? AND id < ? AND role = 'user' ORDER BY id DESC LIMIT 1",
                     (answer_row["chat_id"], answer_row["id"])).fetchone()
    return row["content"] if row else ""


def _message(r) -> Message:
    return Message(r["id"], r["role"], r["content"], r["shown"], r["question"], r["adapter"], r["version"],
                   None if r["checked"] is None else bool(r["checked"]), bool(r["withheld"]), json.loads(r["sources"]),
                   r["label"], r["completion_id"], r["created_at"], r["rating"] or 0, r["correction"] or "")


def _title(text: str) -> str:
    return " ".join(str(text or "").split())[:MAX_TITLE_CHARS]


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HistoryError(f"{str(value)[:20]!r} is not a message number") from None
