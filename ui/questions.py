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
from assistant.grounding.errors import KnowledgeError
from assistant.history import HistoryError
from assistant.questions import QueueError
from assistant.similar_questions import CachedEncoder, similar_open_items
from assistant.store import StoreError
from ui.access import TRAINER, username
from ui.chat import _safe

STATUS_CHOICES = [("Open", "open"), ("Answered (next version)", "answered"), ("Trained", "trained"),
                  ("Dismissed", "dismissed")]
CONVERSATION_MESSAGES = 12  # the last messages of the chat an item came from


def build(assistant, access, demo) -> None:
    """The section, inside the Train tab."""
    store = assistant.store
    encode = _encoder(assistant)
    with gr.Accordion("Questions to answer", open=True, elem_id="questions-to-answer"):
        gr.Markdown("Questions that got no checked answer and answers people flagged, the most asked first. "
                    "An answer you give here becomes a Q&A pair of the adapter's next version.")
        with gr.Row(equal_height=True):
            status = gr.Radio(STATUS_CHOICES, value="open", label="Show", elem_id="queue-status", scale=4)
            refresh = gr.Button("↻ Refresh", size="sm", scale=1, elem_id="queue-refresh")
        items = gr.Radio([], value=None, label="Items", elem_id="queue-items")
        detail = gr.Markdown(elem_id="queue-detail")
        also = gr.CheckboxGroup([], value=[], visible=False, elem_id="queue-also",
                                label="These open questions may ask the same thing in other words. Tick those that "
                                      "do: your answer or dismissal goes to them too.")
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
        return (*show_item(store, item_id), similar_choices(store, item_id, encode))

    def decide(action):
        def handler(request: gr.Request, wanted, item_id, answer_text, why, together):
            allowed(request)
            by = username(request) or "trainer"
            message = decide_item(store, action, item_id, answer_text if action == "answer" else why, by,
                                  together if action != "reopen" else ())
            if action == "reopen" and message.startswith("↩"):  # it is open now: show it there, ready to correct
                return (message, gr.Radio(value="open"), *list_items(store, "open", item_id), *show_item(store, item_id),
                        similar_choices(store, item_id, encode))
            return (message, gr.skip(), *list_items(store, wanted, None), *show_item(store, None),
                    similar_choices(store, None, encode))
        handler.__name__ = f"queue_{action}"
        return handler

    listed = [items, detail]
    status.input(list_questions, status, listed)
    refresh.click(list_questions, [status, items], listed)
    items.input(show_question, items, [detail, text, also])
    for button, action in ((save, "answer"), (dismiss, "dismiss"), (reopen, "reopen")):
        button.click(decide(action), [status, items, text, reason, also], [note, status, *listed, detail, text, also])

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


def decide_item(store, action: str, item_id, text: str, by: str, together=()) -> str:
    """Answer, dismiss or reopen one item, and answer or dismiss alike the similar ones ticked."""
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
    done, refused = questions.decide_alike(store, item, list(together or ()), by)
    alike = len(done)
    more = (f" So were {alike} similar question{'s' if alike != 1 else ''}." if alike else "") + (
        " Not changed: " + "; ".join(_safe(r) for r in refused) if refused else "")
    if item.status == "answered":
        return f"✅ Answered: “{_safe(item.question)}” goes into {_safe(item.adapter)}'s next version.{more}"
    return f"Dismissed: “{_safe(item.question)}”.{more}"


def similar_choices(store, item_id, encode):
    """The ticks for the open questions that may ask what this one asks (hidden when there are none)."""
    if item_id in (None, "") or encode is None:
        return gr.CheckboxGroup(choices=[], value=[], visible=False)
    try:
        item = questions.get(store, item_id)
        offered = similar_open_items(item, questions.items(store, "open", item.adapter), encode) \
            if item.status == "open" else []
    except (QueueError, StoreError, KnowledgeError):
        offered = []
    choices = [(f"{' '.join(o.question.split())[:120]} · {o.askers} asked · similarity {s:.2f}", o.id)
               for o, s in offered]
    return gr.CheckboxGroup(choices=choices, value=[], visible=bool(choices))


def _encoder(assistant):
    """The knowledge index's embedder, remembering vectors, looked up when first needed (the app
    opens the index after building the page); without one it raises and nothing is offered."""
    cached: list[CachedEncoder] = []

    def encode(texts):
        embedder = getattr(getattr(assistant, "knowledge", None), "embedder", None)
        if embedder is None:
            raise KnowledgeError("no knowledge index, so no similar questions are offered")
        if not cached:
            cached.append(CachedEncoder(embedder.encode))
        return cached[0](texts)

    return encode


def _choice(item) -> str:
    """One line per item (a radio label is text, never markup)."""
    flag = "👎 " if item.flagged else ""
    when = item.last_asked[:16].replace("T", " ")
    question = " ".join(item.question.split())
    return f"{flag}{question[:120]} — {item.adapter} · {item.askers} asked · last {when}"
