"""The chat history's and the queue's handlers without a browser: who owns a session's chats,
a chat rebuilt from the database, and a farmer's markup shown to trainers as text."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr

from assistant import history, questions
from assistant.auth import Access
from assistant.store import Store
from ui import chats
from ui import questions as queue_ui

BROWSER = "browser:" + "0f" * 16


def test_the_owner_is_the_user_with_a_users_file_else_the_browser_id():
    local = Access(None)
    assert chats.owner_of(local, None, BROWSER) == BROWSER
    assert chats.owner_of(local, None, "browser:../../x") is None  # a forged id owns nothing
    users = SimpleNamespace(enabled=True)
    assert chats.owner_of(users, SimpleNamespace(username="Amina"), BROWSER) == "user:amina"
    assert chats.owner_of(users, None, BROWSER) is None  # with a users file, never by browser id


def test_the_browser_id_is_read_with_the_same_key_after_a_restart(tmp_path):
    with gr.Blocks():
        first = chats.layout(Store.open(tmp_path)).browser
    with gr.Blocks():
        again = chats.layout(Store.open(tmp_path)).browser  # as after a restart of the app
    assert first.secret == again.secret and len(first.secret) >= 32


def test_a_chat_is_rebuilt_from_the_database_withheld_answers_out_of_the_prompt(tmp_path):
    store = Store.open(tmp_path)
    chat_id, _, said = history.add_turn(store, BROWSER, None, "Goat with a swollen belly?",
                                        {"content": "No checked answer.", "shown": "No checked answer.\n\n<sub>— x</sub>",
                                         "adapter": "agriculture", "withheld": True})
    display, conversation, opened, ids, listing, *_ = chats._open(store, BROWSER, None)
    assert opened == chat_id and ids == [None, said]
    assert display.constructor_args["value"][1]["content"].endswith("<sub>— x</sub>")
    assert display.constructor_args["feedback_value"] == [None]
    assert conversation == [{"role": "user", "content": "Goat with a swollen belly?"}]
    assert listing.constructor_args["value"] == chat_id
    assert chats._open(store, "browser:" + "11" * 16, chat_id)[0] == []  # another browser gets nothing of it


def test_trainers_see_a_farmers_markup_as_text(tmp_path):
    store = Store.open(tmp_path)
    chat_id, _, said = history.add_turn(store, BROWSER, None, "What is **this** <img src=x onerror=alert(1)>?",
                                        {"content": "[click](http://e.vil)", "adapter": "agriculture"})
    history.rate(store, BROWSER, said, -1, "<script>alert(1)</script>")
    radio, count = queue_ui.list_items(store, "open")
    assert count == "1 item" and "👎" in radio.constructor_args["choices"][0][0]
    item_id = radio.constructor_args["choices"][0][1]
    detail, start = queue_ui.show_item(store, item_id)
    assert start == "<script>alert(1)</script>"  # the answer box starts from the correction, as typed
    assert "<script>" not in detail and "<img" not in detail and "**this**" not in detail
    assert not re.search(r"(?<!\\)\[", detail)  # an unescaped [ could open a link
    assert "The conversation it came from" in detail
    assert queue_ui.decide_item(store, "dismiss", item_id, "", "grace").startswith("⚠️ the reason for dismissing is empty")
    assert "goes into agriculture's next version" in queue_ui.decide_item(store, "answer", item_id, "Fine.", "grace")
    assert "no longer open" in queue_ui.decide_item(store, "dismiss", item_id, "dup", "omar")
    assert questions.get(store, item_id).decided_by == "grace"
    assert queue_ui.decide_item(store, "reopen", item_id, "", "omar").startswith("↩ Reopened")
    assert "reopened by omar" in queue_ui.show_item(store, item_id)[0]
    assert queue_ui.show_item(store, item_id)[1] == "Fine."  # the given answer is where the correction starts
    assert "open already" in queue_ui.decide_item(store, "reopen", item_id, "", "grace")
