"""Chats that last: kept per owner across restarts, never mixed between owners; feedback bounded,
stored as text, and a 👎 or a correction reaching the trainers' queue once per owner."""

from __future__ import annotations

import pytest

from assistant import history, questions
from assistant.history import HistoryError
from assistant.store import Store

AMINA, JOSEPH = "user:amina", "browser:" + "ab" * 16


def answer(text="Sow maize 5 cm deep.", **meta):
    return {"content": text, "shown": text + "\n\n<sub>— agriculture v1</sub>", "question": "How deep is maize sown?",
            "adapter": "agriculture", "version": 1, "checked": True, "sources": [{"question": "q", "answer": "a"}],
            "label": "agriculture v1", "completion_id": None, **meta}


def test_a_restart_keeps_every_chat_message_and_rating(tmp_path):
    store = Store.open(tmp_path)
    chat, asked, said = history.add_turn(store, AMINA, None, "How deep is maize sown?", answer())
    history.add_turn(store, AMINA, chat, "And beans?", answer("Beans 3 cm.", checked=False))
    history.rate(store, AMINA, said, 1)
    again = Store.open(tmp_path)  # as after an app restart
    [listed] = history.chats(again, AMINA)
    assert listed.id == chat and listed.title == "How deep is maize sown?"
    shown = history.messages(again, AMINA, chat)
    assert [(m.role, m.content) for m in shown] == [("user", "How deep is maize sown?"), ("assistant", "Sow maize 5 cm deep."),
                                                   ("user", "And beans?"), ("assistant", "Beans 3 cm.")]
    assert shown[1].rating == 1 and shown[1].checked is True and shown[3].checked is False
    assert shown[1].adapter == "agriculture" and shown[1].version == 1 and shown[1].sources[0]["answer"] == "a"


def test_two_owners_histories_never_mix(tmp_path):
    store = Store.open(tmp_path)
    mine, _, said = history.add_turn(store, AMINA, None, "Amina's question", answer())
    theirs, _, _ = history.add_turn(store, JOSEPH, None, "Joseph's question", answer())
    assert [c.id for c in history.chats(store, AMINA)] == [mine]
    assert [c.id for c in history.chats(store, JOSEPH)] == [theirs]
    with pytest.raises(HistoryError, match="not among your chats"):
        history.messages(store, JOSEPH, mine)
    with pytest.raises(HistoryError, match="no answer"):
        history.rate(store, JOSEPH, said, -1)
    with pytest.raises(HistoryError, match="not among your chats"):
        history.delete_chat(store, JOSEPH, mine)
    # Joseph naming Amina's chat id to add a turn gets a chat of his own, not hers.
    other, _, _ = history.add_turn(store, JOSEPH, mine, "sneaky", answer())
    assert other != mine and len(history.messages(store, AMINA, mine)) == 2
    with pytest.raises(HistoryError, match="no valid owner"):
        history.chats(store, "browser:../../etc")


def test_a_thumbs_down_with_a_correction_is_one_queue_item_however_often(tmp_path):
    store = Store.open(tmp_path)
    chat, _, said = history.add_turn(store, AMINA, None, "How deep is maize sown?", answer())
    for _ in range(500):
        history.rate(store, AMINA, said, -1, "5 cm in moist soil, <b>deeper</b> in dry soil")
    [item] = questions.items(store)
    assert item.askers == 1 and item.flagged and item.asks[0].times == 500 and item.asks[0].chat_id == chat
    assert item.correction == "5 cm in moist soil, <b>deeper</b> in dry soil"  # as typed: text, never markup
    assert history.messages(store, AMINA, chat)[1].correction == item.correction


@pytest.mark.parametrize("correction, rating, match", [("x" * 100_000, -1, "100,000 characters; at most 4,000"),
                                                       ("fine", 2, "rating is 1")])
def test_bad_feedback_is_refused_and_nothing_is_written(tmp_path, correction, rating, match):
    store = Store.open(tmp_path)
    chat, _, said = history.add_turn(store, AMINA, None, "q?", answer())
    with pytest.raises(HistoryError, match=match):
        history.rate(store, AMINA, said, rating, correction)
    assert history.messages(store, AMINA, chat)[1].rating == 0 and questions.items(store) == []


def test_a_withheld_answer_links_the_chat_to_the_item_the_service_recorded(tmp_path):
    store = Store.open(tmp_path)
    questions.record_open_question(store, "Goat with a swollen belly?", "agriculture", 1, "not covered", user=AMINA)
    chat, _, said = history.add_turn(store, AMINA, None, "Goat with a swollen belly?",
                                     answer("I don't have a checked answer.", checked=False, withheld=True,
                                            question="Goat with a swollen belly?"))
    [item] = questions.items(store)
    assert (item.askers, item.asks[0].times, item.asks[0].chat_id, item.asks[0].message_id) == (1, 1, chat, said)
    questions.answer(store, item.id, "Call a vet: it may be bloat.", "omar")
    questions.sync_trained(store, "agriculture", {item.id: 2})
    assert history.chats(store, AMINA)[0].answered == 1  # the farmer's chat list shows it answered
    history.delete_chat(store, AMINA, chat)
    assert history.chats(store, AMINA) == [] and questions.get(store, item.id).asks[0].chat_id is None


def test_a_full_disk_is_a_clear_message_and_nothing_half_written(tmp_path, monkeypatch):
    from assistant.store import StoreError

    store = Store.open(tmp_path)
    history.add_turn(store, AMINA, None, "before", answer())
    connect = store._connect

    def full():  # the database may not grow by a single page: as a full disk
        db = connect()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr(store, "_connect", full)
    with pytest.raises(StoreError, match="the disk is full: nothing was written"):
        history.add_turn(store, AMINA, None, "a long question " * 2000, answer("x" * 30_000))
    monkeypatch.undo()
    assert [c.title for c in history.chats(store, AMINA)] == ["before"]
    assert len(history.messages(store, AMINA, history.chats(store, AMINA)[0].id)) == 2
