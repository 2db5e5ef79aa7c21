"""The trainers' queue in the store: grouping, counting once per asker, decisions as
compare-and-set, the pairs handed to the next version's training, and the database's upgrade."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from assistant import questions
from assistant.questions import QueueError
from assistant.store import DB_FILE, MIGRATIONS, Store


@pytest.fixture()
def store(tmp_path):
    return Store.open(tmp_path)


def test_the_same_question_in_other_case_and_punctuation_is_one_item_counted_once_per_asker(store):
    a = questions.record_ask(store, "agriculture", "How do I treat a goat's swollen belly?", "user:amina")
    b = questions.record_ask(store, "agriculture", "  how do i treat a GOAT'S swollen belly  ", "user:joseph")
    c = questions.record_ask(store, "xylandia", "How do I treat a goat's swollen belly?", "user:amina")
    assert a == b != c
    for _ in range(500):
        questions.record_ask(store, "agriculture", "How do I treat a goat's swollen belly?", "user:spammer", "flagged")
    [item] = questions.items(store, adapter="agriculture")
    assert item.askers == 3 and item.flagged
    assert next(x for x in item.asks if x.asker == "user:spammer").times == 500
    assert item.question == "How do I treat a goat's swollen belly?"  # as first asked


def test_open_questions_the_service_records_reach_the_queue(store):
    questions.record_open_question(store, "Which dose of dimethoate is safe on kale?", "agriculture", 1, "not covered", user="amina")
    questions.record_open_question(store, "Which dose of dimethoate is safe on kale?", "agriculture", 1, "not covered")
    [item] = questions.items(store)
    assert [a.asker for a in item.asks] == ["amina", questions.ANONYMOUS]
    assert len(store.open_questions()) == 2  # the raw log keeps every time it was asked


def test_answered_pairs_then_sync_trained_marks_this_adapters_items_and_is_safe_to_repeat(store):
    one = questions.record_ask(store, "agriculture", "When do I plant teff?", "user:a")
    two = questions.record_ask(store, "agriculture", "What kills aphids on kale?", "user:b", "flagged",
                               correction="Soapy water, sprayed under the leaves.")
    other = questions.record_ask(store, "xylandia", "Who founded Crystalburg?", "user:a")
    questions.answer(store, one, "Plant teff at the start of the long rains.", by="trainer1")
    questions.answer(store, two, questions.get(store, two).correction, by="trainer2")
    questions.answer(store, other, "Queen Ilsa.", by="trainer1")
    pairs = questions.answered_pairs(store, "agriculture")
    assert pairs == [{"question": "When do I plant teff?", "answer": "Plant teff at the start of the long rains.",
                      "item_ids": [one], "answered_by": "trainer1"},
                     {"question": "What kills aphids on kale?", "answer": "Soapy water, sprayed under the leaves.",
                      "item_ids": [two], "answered_by": "trainer2"}]
    held = {i: 2 for p in pairs for i in p["item_ids"]} | {other: 2}  # other is xylandia's: left alone
    assert questions.sync_trained(store, "agriculture", held) == (2, 0)
    assert questions.sync_trained(store, "agriculture", held) == (0, 0)  # a retried call changes nothing
    assert questions.answered_pairs(store, "agriculture") == []
    assert questions.get(store, one).status == "trained" and questions.get(store, one).trained_version == 2
    assert questions.get(store, other).status == "answered"
    # rolled back to a version that does not hold them: answered again, for the next version to train
    assert questions.sync_trained(store, "agriculture", {}) == (0, 2)
    assert [p["item_ids"] for p in questions.answered_pairs(store, "agriculture")] == [[one], [two]]


def test_two_trainers_a_second_apart_the_second_is_told_what_the_first_did(store):
    item = questions.record_ask(store, "agriculture", "Is it going to rain?", "user:a")
    results = []

    def act(fn, *args):
        try:
            results.append(fn(store, item, *args).status)
        except QueueError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=act, args=(questions.dismiss, "weather is out of scope", "ruth")),
               threading.Thread(target=act, args=(questions.answer, "Yes.", "omar"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r in ("answered", "dismissed") for r in results) == [False, True]
    message = next(r for r in results if r not in ("answered", "dismissed"))
    assert f"item {item} is no longer open" in message and "nothing was changed" in message
    with pytest.raises(QueueError, match="no item 999"):
        questions.answer(store, 999, "x", "omar")


@pytest.mark.parametrize("text, match", [("", "is empty"), ("x" * 100_000, "100,000 characters"), (None, "must be text")])
def test_bad_answers_are_refused_with_what_is_wrong(store, text, match):
    item = questions.record_ask(store, "agriculture", "q?", "user:a")
    with pytest.raises(QueueError, match=match):
        questions.answer(store, item, text, "omar")
    assert questions.get(store, item).status == "open"


def test_a_database_of_the_previous_schema_is_upgraded_keeping_its_rows(tmp_path):
    path = tmp_path / DB_FILE
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
        db.execute("INSERT INTO open_questions (asked_at, question, adapter, version, reason) "
                   "VALUES ('2026-01-01T00:00:00Z', 'old question?', 'agriculture', 1, 'not covered')")
    store = Store.open(tmp_path)
    assert [q.question for q in store.open_questions()] == ["old question?"]
    [item] = questions.items(store)  # what was recorded before the queue existed is in it
    assert (item.question, item.adapter, item.first_asked, item.askers) == ("old question?", "agriculture",
                                                                          "2026-01-01T00:00:00Z", 1)
    with store.read() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    Store.open(tmp_path)  # a second open migrates nothing
    assert questions.items(store)[0].asks[0].times == 1


def test_reopen_takes_back_a_decision_once_and_keeps_the_answer_as_a_start(store):
    item = questions.record_ask(store, "agriculture", "How deep is maize sown?", "user:amina")
    questions.answer(store, item, "5 cm", "omar")
    questions.sync_trained(store, "agriculture", {item: 2})
    reopened = questions.reopen(store, item, "grace")
    assert (reopened.status, reopened.answer, reopened.trained_version, reopened.decided_by) == ("open", "5 cm", None,
                                                                                                 "grace")
    with pytest.raises(QueueError, match=r"open already \(reopened by grace at .*\); nothing was changed"):
        questions.reopen(store, item, "omar")
    assert questions.answer(store, item, "4 to 5 cm", "grace").answer == "4 to 5 cm"
    dismissed = questions.record_ask(store, "agriculture", "Rain tomorrow?", "user:amina")
    questions.dismiss(store, dismissed, "weather", "omar")
    assert questions.reopen(store, dismissed, "grace").reason == ""
    assert questions.answered_pairs(store, "agriculture")[0]["answer"] == "4 to 5 cm"


def test_schema_6_makes_one_asker_of_one_persons_old_keys(tmp_path):
    path = tmp_path / DB_FILE
    with sqlite3.connect(path) as db:
        db.executescript(";".join(MIGRATIONS[:4]) + ";PRAGMA user_version = 5;")
        db.execute("INSERT INTO queue_items (id, adapter, key, question, first_asked, last_asked) "
                   "VALUES (1, 'agriculture', 'q', 'q?', 'T1', 'T9')")
        for asker, kind, correction, first, last, times in [
                ("fay", "open", "", "T2", "T3", 1),              # the service, for an API question
                ("api:fay", "flagged", "5 cm", "T3", "T4", 1),   # the same question kept and rated
                ("user:fay", "open", "", "T1", "T2", 2),         # the chat tab
                ("api:local", "open", "", "T5", "T5", 1), ("anonymous", "open", "", "T6", "T6", 1),
                ("api:gus", "open", "", "T7", "T8", 3)]:
            db.execute("INSERT INTO queue_asks (item_id, asker, kind, correction, first_asked, last_asked, times) "
                       "VALUES (1, ?, ?, ?, ?, ?, ?)", (asker, kind, correction, first, last, times))
        db.execute("INSERT INTO open_questions (asked_at, question, adapter, version, reason, user) "
                   "VALUES ('T2', 'q?', 'agriculture', 1, 'not covered', 'fay')")
    store = Store.open(tmp_path)
    asks = {a.asker: a for a in questions.get(store, 1).asks}
    assert sorted(asks) == ["anonymous", "api:local", "user:fay", "user:gus"]
    fay = asks["user:fay"]
    assert (fay.kind, fay.correction, fay.first_asked, fay.last_asked, fay.times) == ("flagged", "5 cm", "T1", "T4", 2)
    assert (asks["user:gus"].times, asks["user:gus"].first_asked) == (3, "T7")
    assert [q.user for q in store.open_questions()] == ["user:fay"]


def test_backup_is_a_complete_copy_while_writes_go_on(store, tmp_path):
    for i in range(50):
        questions.record_ask(store, "agriculture", f"question {i}?", "user:a")
    writer = threading.Thread(target=lambda: [questions.record_ask(store, "agriculture", f"later {i}?", "user:b")
                                              for i in range(50)])
    (tmp_path / "backups").mkdir()
    writer.start()
    copy = store.backup(tmp_path / "backups")
    writer.join()
    assert copy.name == DB_FILE
    assert 50 <= len(questions.items(Store(copy), limit=1000)) <= 100
    with pytest.raises(Exception, match="another file"):
        store.backup(store.path)
    assert not list((tmp_path / "backups").glob("*.partial"))
