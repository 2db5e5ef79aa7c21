"""The chat tab's history and feedback: chats kept in the database, per user or per browser.

The owner of a session's chats is decided on the server: the logged-in user when the app has a
users file, else a random id this browser keeps in its local storage (Gradio's BrowserState),
read once when the page loads. Handlers get the owner from the session, never from a value a
client sends with each request. Everything shown is rebuilt from the database, so a reload, a
dropped connection or a restart of the app finds the chat as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import gradio as gr

from assistant import history
from assistant.history import HistoryError
from assistant.store import StoreError
from ui import chat
from ui.access import FARMER, username

BROWSER_KEY = "field-assistant-browser"  # the local-storage key of this browser's id


@dataclass
class History:
    """The components: the session's owner, its chat, the message ids beside the chatbot's messages."""
    browser: gr.BrowserState
    owner: gr.State
    chat: gr.State
    ids: gr.State
    listing: gr.Dropdown
    delete: gr.Button
    confirm_delete: gr.Button
    correction_row: gr.Row | None = None  # these from feedback_layout, under the conversation
    correction: gr.Textbox | None = None
    send_correction: gr.Button | None = None
    suggest: gr.Button | None = None
    target: gr.State | None = None
    note: gr.Markdown | None = None


def layout(store) -> History:
    """The list of past chats (above the conversation). The browser's id is kept encrypted under a
    secret the database keeps (Gradio's default is a new one each start: a restart would lose it)."""
    secret = store.secret("browser-state") if store is not None else None
    with gr.Row(equal_height=True, elem_id="chat-history"):
        listing = gr.Dropdown(choices=[], value=None, label="Your chats", elem_id="chat-list", scale=4, interactive=True)
        delete = gr.Button("Delete chat", size="sm", scale=1, elem_id="delete-chat")
    confirm = gr.Button("Yes, delete this chat", size="sm", variant="stop", visible=False, elem_id="delete-chat-confirm")
    return History(gr.BrowserState("", storage_key=BROWSER_KEY, secret=secret), gr.State(""), gr.State(""), gr.State([]),
                   listing, delete, confirm)


def feedback_layout(h: History) -> None:
    """"Suggest a correction" and its box (under the conversation; 👍 / 👎 are the chatbot's own)."""
    h.suggest = gr.Button("Suggest a correction", size="sm", elem_id="suggest-correction", visible=False)
    with gr.Row(visible=False, elem_id="correction-row") as h.correction_row:
        h.correction = gr.Textbox(label="Suggest a correction: what should the answer have said?", lines=2, scale=4,
                                  elem_id="correction")
        h.send_correction = gr.Button("Send correction", scale=1, elem_id="correction-send")
    h.target, h.note = gr.State(None), gr.Markdown(elem_id="feedback-note")


def owner_of(access, request, kept: str) -> str | None:
    """The session's owner: the user with a users file, else the browser id read at load (or None)."""
    if access.enabled:
        name = username(request)
        return f"user:{name}" if name else None
    return kept if kept and history.OWNER.fullmatch(kept) else None


def _checked(access, request, action: str) -> None:
    if message := access.denial(username(request), FARMER, action):
        raise gr.Error(message, print_exception=False)


def wire(assistant, access, demo, h: History, chatbot, conversation, suggested):
    """The history's events; returns the page-load event that opens the session's chat."""
    store = assistant.store
    opened = [chatbot, conversation, h.chat, h.ids, h.listing, h.suggest, h.correction_row, h.note]

    def load_chats(request: gr.Request, browser: str):
        if not access.enabled and not history.OWNER.fullmatch(f"browser:{browser or ''}"):
            browser = uuid.uuid4().hex  # this browser's first visit: it keeps the id from now on
        owner = owner_of(access, request, f"browser:{browser}")
        return browser, owner, *_open(store, owner, None)

    loaded = demo.load(load_chats, h.browser, [h.browser, h.owner, *opened])

    def open_chat(request: gr.Request, owner, chat_id):
        _checked(access, request, "read chats")
        return _open(store, owner_of(access, request, owner), chat_id or None)

    h.listing.input(open_chat, [h.owner, h.listing], opened)

    def delete_chat(request: gr.Request, owner, chat_id):
        _checked(access, request, "delete chats")
        owner = owner_of(access, request, owner)
        if owner and chat_id:
            try:
                history.delete_chat(store, owner, chat_id)
            except (HistoryError, StoreError) as exc:
                raise gr.Error(str(exc), print_exception=False) from None
        return _open(store, owner, None)

    # Two taps, so a slip of the thumb on a phone deletes nothing; any other action hides the second.
    h.delete.click(lambda chat_id: gr.Button(visible=bool(chat_id)), h.chat, h.confirm_delete, queue=False)
    h.confirm_delete.click(delete_chat, [h.owner, h.chat], opened).then(lambda: gr.Button(visible=False), None,
                                                                        h.confirm_delete, queue=False)
    h.listing.input(lambda: gr.Button(visible=False), None, h.confirm_delete, queue=False)

    def rate_answer(request: gr.Request, owner, ids, data: gr.LikeData):
        _checked(access, request, "rate answers")
        message_id = _id_at(ids, data.index)
        rating = {True: 1, False: -1}.get(data.liked, 0)
        note = _rate(store, owner_of(access, request, owner), message_id, rating)
        return message_id, gr.Row(visible=rating < 0 and message_id is not None), note

    chatbot.like(rate_answer, [h.owner, h.ids], [h.target, h.correction_row, h.note])
    h.suggest.click(lambda ids: (_last_answer(ids), gr.Row(visible=True), ""), h.ids,
                    [h.target, h.correction_row, h.note], queue=False)

    def suggest_correction(request: gr.Request, owner, target, ids, text):
        _checked(access, request, "suggest corrections")
        message_id = target if target is not None else _last_answer(ids)
        if not (text or "").strip():
            return text, gr.Row(visible=True), "⚠️ Write the correction first."
        note = _rate(store, owner_of(access, request, owner), message_id, -1, text)
        ok = note.startswith("✅")
        return ("" if ok else text), gr.Row(visible=not ok), note

    h.send_correction.click(suggest_correction, [h.owner, h.target, h.ids, h.correction], [h.correction, h.correction_row, h.note])
    return loaded


def responder(assistant, access):
    """chat.respond, keeping each finished answer in the session's chat (a new chat if none)."""
    store = assistant.store

    def respond(request: gr.Request, message, display, conversation, adapter, max_tokens, temperature, ground,
                owner, chat_id, ids):
        _checked(access, request, "chat")
        if not (message or "").strip():  # an empty question changes nothing: the chatbot this event
            yield (gr.skip(),) * 6  # was sent may be stale by now, and must never be written back
            return
        owner = owner_of(access, request, owner)
        done, before = {}, list(ids or [])
        for shown, conv, box, suggestions in chat.respond(assistant, message, display, conversation, adapter, max_tokens,
                                                          temperature, ground, user=owner,
                                                          on_done=lambda a, s: done.update(answer=a, shown=s)):
            ids = before + [None] * max(0, len(shown) - len(before))  # one id per shown message; only answers have one
            if "answer" in done and "saved" not in done:
                done["saved"] = True
                try:
                    if owner and store is not None:
                        chat_id, _, said = history.add_turn(store, owner, chat_id, (message or "").strip(),
                                                                _meta(done["answer"], done["shown"]))
                        before = ids[:-1] + [said]
                except (HistoryError, StoreError) as exc:
                    gr.Warning(f"This answer could not be kept in your chat history: {exc}")
            yield shown, conv, box, suggestions, chat_id, before + [None] * max(0, len(shown) - len(before))

    return respond


def listing_of(assistant, access):
    def list_chats(request: gr.Request, owner, chat_id):
        _checked(access, request, "read chats")
        owner = owner_of(access, request, owner)
        return _listing(assistant.store, owner, chat_id), gr.Button(visible=bool(chat_id))

    return list_chats


def new_chat():
    """An empty conversation; the next question starts a new chat in the list. Outputs: chatbot,
    conversation, textbox, suggestions, chat, ids, list, correction row, note, suggest button."""
    return [], [], "", [], "", [], gr.Dropdown(value=None), gr.Row(visible=False), "", gr.Button(visible=False)


def _open(store, owner, chat_id):
    """(chatbot, conversation, chat id, ids, list, suggest button, correction row, note) of a chat:
    the one asked for, else the most recent, else an empty one."""
    empty = ([], [], "", [], _listing(store, owner, None), gr.Button(visible=False), gr.Row(visible=False), "")
    if not owner or store is None:
        return empty
    try:
        chat_id = chat_id or next((c.id for c in history.chats(store, owner)), None)
        if not chat_id:
            return empty
        kept = history.messages(store, owner, chat_id)
    except (HistoryError, StoreError) as exc:
        return (*empty[:-1], f"⚠️ {exc}")
    display = [{"role": m.role, "content": m.shown or m.content} for m in kept]
    rated = [{1: "Like", -1: "Dislike"}.get(m.rating) for m in kept if m.role == "assistant"]  # 👍/👎 as left
    conversation = [{"role": m.role, "content": m.content} for m in kept if not (m.role == "assistant" and m.withheld)]
    ids = [m.id if m.role == "assistant" else None for m in kept]
    return (gr.Chatbot(value=display, feedback_value=rated), conversation, chat_id, ids, _listing(store, owner, chat_id),
            gr.Button(visible=any(m.role == "assistant" for m in kept)), gr.Row(visible=False), "")


def _listing(store, owner, chat_id):
    if not owner or store is None:
        return gr.Dropdown(choices=[], value=None)
    try:
        found = history.chats(store, owner)
    except (HistoryError, StoreError):
        found = []
    choices = [(f"{c.title or 'New chat'} · {c.updated_at[:16].replace('T', ' ')}"
                + (f" · ✓ {c.answered} answered" if c.answered else ""), c.id) for c in found]
    return gr.Dropdown(choices=choices, value=chat_id if chat_id in {c.id for c in found} else None)


def _rate(store, owner, message_id, rating: int, correction: str = "") -> str:
    if not owner or message_id is None or store is None:
        return "⚠️ Only answers kept in your chat history can be rated (reload the page)."
    try:
        history.rate(store, owner, message_id, rating, correction)
    except (HistoryError, StoreError) as exc:
        return f"⚠️ {chat._safe(exc)}"
    if correction:
        return "✅ Thank you: your correction goes to the trainers."
    return {1: "✅ Thank you for the 👍.", -1: "Sorry about that answer: the trainers will see it. "
            "What should it have said?"}.get(rating, "Rating removed.")


def _id_at(ids, index):
    index = index[0] if isinstance(index, (list, tuple)) else index
    return ids[index] if isinstance(index, int) and 0 <= index < len(ids or []) else None


def _last_answer(ids):
    return next((i for i in reversed(ids or []) if i is not None), None)


def _meta(answer, shown: str) -> dict:
    d = answer.describe()
    return {"content": answer.text, "shown": shown, "question": answer.question, "adapter": d["adapter"],
            "version": d["version"], "checked": d["checked"], "withheld": d["withheld"], "sources": d["sources"],
            "label": d["label"], "completion_id": None}
