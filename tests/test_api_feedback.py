"""POST /v1/feedback: a rating or correction of a completion by its id, only by the caller who
received it, bounded, in OpenAI's error shape; a 👎 reaches the trainers' queue once per caller."""

from __future__ import annotations

import httpx
import pytest
from test_api_unit import FARMER_KEY, JSON, TRAINER_KEY, FakeAnswer, FakeAssistant, Server, _users

from api.app import create_api
from assistant import history, questions
from assistant.auth import Access
from assistant.store import Store
from ui.clients import Clients


class DescribedAnswer(FakeAnswer):
    question = "How deep is maize sown?"

    def describe(self):
        return {"adapter": "alpha", "version": 1, "checked": False, "withheld": False, "sources": [],
                "label": "alpha v1 · not checked"}


class StoredAssistant(FakeAssistant):
    def __init__(self, store):
        super().__init__()
        self.store = store

    def answer(self, messages, model, settings, ground=False, stop=()):
        answer = DescribedAnswer(self.mode, self.release)
        self.answers.append(answer)
        return answer


@pytest.fixture()
def api(tmp_path):
    store = Store.open(tmp_path)
    with Server(create_api(StoredAssistant(store), Access(_users()), Clients())) as url:
        yield url, store


def ask(url, key, stream=False):
    body = {"model": "alpha", "messages": [{"role": "user", "content": "How deep is maize sown?"}], "stream": stream}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    if stream:
        return r.text.split('"id": "', 1)[1].split('"', 1)[0]
    return r.json()["id"]


def rate(url, key, **body):
    return httpx.post(f"{url}/v1/feedback", json=body, headers={"Authorization": f"Bearer {key}", **JSON}, timeout=30)


def test_feedback_on_a_completion_by_its_id_reaches_the_queue_once(api):
    url, store = api
    whole, streamed = ask(url, FARMER_KEY), ask(url, FARMER_KEY, stream=True)
    for _ in range(3):
        r = rate(url, FARMER_KEY, completion_id=whole, rating=-1, correction="<script>alert(1)</script> 5 cm")
        assert r.status_code == 200, r.text
    assert r.json() == {"object": "feedback", "completion_id": whole, "rating": -1,
                        "correction": "<script>alert(1)</script> 5 cm", "queued": True}
    assert rate(url, FARMER_KEY, completion_id=streamed, rating=1).status_code == 200
    [item] = questions.items(store)
    assert item.askers == 1 and item.correction == "<script>alert(1)</script> 5 cm" and item.asks[0].asker == "user:fay"


class WithheldAnswer(DescribedAnswer):
    def describe(self):
        return {**super().describe(), "withheld": True}


class CheckedOnlyAssistant(StoredAssistant):
    """Like the answer service under "checked only": no checked answer, so the question is recorded."""

    def answer(self, messages, model, settings, ground=False, stop=(), user=None):
        questions.record_open_question(self.store, messages[-1]["content"], "alpha", 1, "not covered", user=user)
        answer = WithheldAnswer(self.mode, self.release)
        self.answers.append(answer)
        return answer


def test_one_person_is_one_asker_whether_they_ask_by_the_api_or_the_chat_tab(tmp_path):
    store = Store.open(tmp_path)
    with Server(create_api(CheckedOnlyAssistant(store), Access(_users()), Clients())) as url:
        completion = ask(url, FARMER_KEY)  # recorded by the service, then kept with the completion
        assert rate(url, FARMER_KEY, completion_id=completion, rating=-1, correction="3 cm").status_code == 200
    # the same farmer asks the same question in the chat tab (ui.chats: owner and asker user:fay)
    questions.record_open_question(store, "How deep is maize sown?", "alpha", 1, "not covered", user="user:fay")
    history.add_turn(store, "user:fay", None, "How deep is maize sown?",
                     {"content": "", "adapter": "alpha", "version": 1, "withheld": True})
    [item] = questions.items(store)
    assert [(a.asker, a.kind, a.correction) for a in item.asks] == [("user:fay", "flagged", "3 cm")]
    assert history.chats(store, "user:fay") and history.chats(store, "api:fay")  # two lists, one person


@pytest.mark.parametrize("body, status, param, text", [
    ({"rating": 1}, 400, "completion_id", "'completion_id' is required"),
    ({"completion_id": "chatcmpl-nope", "rating": 1}, 404, "completion_id", "no completion"),
    ({"completion_id": "X", "rating": 5}, 400, "rating", "must be 1 (good), -1 (bad) or 0"),
    ({"completion_id": "X", "rating": True}, 400, "rating", "must be 1"),
    ({"completion_id": "X"}, 400, "rating", "a 'rating' of 1 or -1, a 'correction', or both"),
    ({"completion_id": "X", "rating": -1, "correction": "x" * 100_000}, 400, "correction", "at most 4,000"),
    ({"completion_id": "X", "rating": 1, "comment": "hi"}, 400, "comment", "unknown field"),
])
def test_bad_feedback_is_refused_in_openai_shape(api, body, status, param, text):
    url, store = api
    body = {k: (ask(url, FARMER_KEY) if v == "X" else v) for k, v in body.items()}
    r = rate(url, FARMER_KEY, **body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and text in error["message"]
    assert questions.items(store) == []


def test_only_the_caller_who_got_the_answer_may_rate_it(api):
    url, _ = api
    theirs = ask(url, FARMER_KEY)
    r = rate(url, TRAINER_KEY, completion_id=theirs, rating=-1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "completion_not_found"
    assert httpx.post(f"{url}/v1/feedback", json={"completion_id": theirs, "rating": 1}, timeout=30).status_code == 401
