"""The Train tab's "Questions to answer": the trainers' queue (assistant.questions) in the browser.

Trainers only (every handler checks the role on the server). Each item is one question as people
asked it of one adapter: how many asked, when, a farmer's suggested correction, and the
conversation it came from. A trainer writes or accepts an answer (it becomes a Q&A pair of the
adapter's next version) or dismisses the item with a reason, and can reopen a decided one.
Everything a farmer typed is shown as text (ui.chat._safe), never as markup.
"""

from __future__ import annotations

import gradio as gr

from assistant import history, questions
from assistant.history import HistoryError
from assistant.questions import QueueError
from assistant.store import StoreError
from ui.access import TRAINER, username
from ui.chat import _safe

STATUS_CHOICES = [("Open", "open"), ("Answered (next version)", "answered"), ("Trained", "trained"),
                  ("Dismissed", "dismissed")]
CONVERSATION_MESSAGES = 12  # the last messages of the chat an item came from


def build(assistant, access, demo) -> None:
    """The section, inside the Train tab."""
    store = assistant.store
    with gr.Accordion("Questions to answer", open=True, elem_id="questions-to-answer"):
        gr.Markdown("Questions that got no checked answer and answers people flagged, the most asked first. "
                    "An answer you give here becomes a Q&A pair of the adapter's next version.")
        with gr.Row(equal_height=True):
            status = gr.Radio(STATUS_CHOICES, value="open", label="Show", elem_id="queue-status", scale=4)
            refresh = gr.Button("↻ Refresh", size="sm", scale=1, elem_id="queue-refresh")
        items = gr.Radio([], value=None, label="Items", elem_id="queue-items")
        detail = gr.Markdown(elem_id="queue-detail")
        text = gr.Textbox(label="Answer (a farmer's correction, when there is one, is the starting point)", lines=3,
                          elem_id="queue-answer")
        save = gr.Button("Save answer", variant="primary", elem_id="queue-save")
        reason = gr.Textbox(label="Or dismiss it, with the reason", lines=1, elem_id="queue-reason",
                            placeholder="e.g. out of scope: weather")
        dismiss = gr.Button("Dismiss", variant="stop", elem_id="queue-dismiss")
        reopen = gr.Button("Reopen (to correct an answer or take back a dismissal)", size="sm",
                           elem_id="queue-reopen")
        note = gr.Markdown(elem_id="queue-note")

    def allowed(request) -> None:
        if message := access.denial(username(request), TRAINER, "see the questions to answer"):
            raise gr.Error(message, print_exception=False)

    def list_questions(request: gr.Request, wanted, chosen=None):
        allowed(request)
        return list_items(store, wanted, chosen)

    def show_question(request: gr.Request, item_id):
        allowed(request)
        return show_item(store, item_id)

    def decide(action):
        def handler(request: gr.Request, wanted, item_id, answer_text, why):
            allowed(request)
            by = username(request) or "trainer"
            message = decide_item(store, action, item_id, answer_text if action == "answer" else why, by)
            if action == "reopen" and message.startswith("↩"):  # it is open now: show it there, ready to correct
                return (message, gr.Radio(value="open"), *list_items(store, "open", item_id), *show_item(store, item_id))
            return (message, gr.Radio(), *list_items(store, wanted, None), *show_item(store, None))
        handler.__name__ = f"queue_{action}"
        return handler

    listed = [items, detail]
    status.input(list_questions, status, listed)
    refresh.click(list_questions, [status, items], listed)
    items.input(show_question, items, [detail, text])
    for button, action in ((save, "answer"), (dismiss, "dismiss"), (reopen, "reopen")):
        button.click(decide(action), [status, items, text, reason], [note, status, *listed, detail, text])

    def load_questions(request: gr.Request):  # farmers get nothing, not even the count
        if access.allows(username(request), TRAINER):
            return list_items(store, "open", None)
        return gr.Radio(choices=[], value=None), ""

    demo.load(load_questions, None, listed)


def list_items(store, status: str, chosen=None):
    """(the items radio, a line saying how many) for one status."""
    try:
        found = questions.items(store, status or "open")
    except (QueueError, StoreError) as exc:
        return gr.Radio(choices=[], value=None), f"⚠️ {_safe(exc)}"
    choices = [(_choice(i), i.id) for i in found]
    value = chosen if chosen in {i.id for i in found} else None
    count = f"{len(found)} item{'s' if len(found) != 1 else ''}" if found else "Nothing here."
    return gr.Radio(choices=choices, value=value), count


def show_item(store, item_id):
    """(the item's details and conversation, the answer box's starting text)."""
    if item_id in (None, ""):
        return "", ""
    try:
        item = questions.get(store, item_id)
    except (QueueError, StoreError) as exc:
        return f"⚠️ {_safe(exc)}", ""
    lines = [f"**{_safe(item.question)}**",
             f"Adapter **{_safe(item.adapter)}** · asked by {item.askers} "
             f"{'person' if item.askers == 1 else 'people'} · first {item.first_asked} · last {item.last_asked}"
             + (" · 👎 flagged" if item.flagged else "")]
    if item.status != "open" or item.decided_by:  # decided, or reopened: who did it and when
        lines.append(f"_{_safe(questions.describe_decision(item))}_")
    for ask in item.asks:
        if ask.correction:
            lines.append(f"Suggested correction: “{_safe(ask.correction)}”")
    chat_id = next((a.chat_id for a in reversed(item.asks) if a.chat_id), None)
    if chat_id:
        lines.append("**The conversation it came from**")
        try:
            kept = history.messages(store, None, chat_id)[-CONVERSATION_MESSAGES:]
        except (HistoryError, StoreError):
            kept = []
        for m in kept:
            who = "Farmer" if m.role == "user" else f"Assistant ({_safe(m.label or m.adapter or 'base')})"
            lines.append(f"> {who}: {_safe(m.content)}")
    return "\n\n".join(lines), item.answer or item.correction


def decide_item(store, action: str, item_id, text: str, by: str) -> str:
    if item_id in (None, ""):
        return "⚠️ Choose an item first."
    try:
        if action == "reopen":
            item = questions.reopen(store, item_id, by)
        else:
            item = (questions.answer if action == "answer" else questions.dismiss)(store, item_id, text or "", by)
    except (QueueError, StoreError) as exc:
        return f"⚠️ {_safe(exc)}"
    if action == "reopen":
        return f"↩ Reopened: “{_safe(item.question)}”. Correct the answer and save it for the next version."
    if item.status == "answered":
        return f"✅ Answered: “{_safe(item.question)}” goes into {_safe(item.adapter)}'s next version."
    return f"Dismissed: “{_safe(item.question)}”."


def _choice(item) -> str:
    """One line per item (a radio label is text, never markup)."""
    flag = "👎 " if item.flagged else ""
    when = item.last_asked[:16].replace("T", " ")
    question = " ".join(item.question.split())
    return f"{flag}{question[:120]} — {item.adapter} · {item.askers} asked · last {when}"
