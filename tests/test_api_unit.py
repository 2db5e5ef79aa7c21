"""The API's own rules over a fake answer service, through a real HTTP server in this process:
request parsing, the error shape, keys and roles, the per-user and queue limits, and that a client
that goes away closes its answer. The fake's answers block until the test lets them go (or never
end), so every "in flight" and "gone" below is a state waited for, never a timing."""

from __future__ import annotations

import json
import socket
import threading
from types import SimpleNamespace

import httpx
import pytest
from tiny import wait_for

from api import schemas
from api.app import create_api
from api.errors import ApiError
from assistant.auth import Access, User, Users, hash_key
from ui.clients import Clients

FARMER_KEY, TRAINER_KEY = "fa-farmer-key-for-tests", "fa-trainer-key-for-tests"
JSON = {"Content-Type": "application/json"}


class FakeAnswer:
    adapter, version, chosen_by, route_reason, label, grounding_note = "alpha", 1, "request", "", "alpha v1", ""
    sources: list = []
    # These tests are about the API's plumbing, so the fake's answers pass for checked: its text is
    # the content, with no trust note (tests/test_api.py covers the note on real answers).
    checked, withheld, suggestions = True, False, []

    def __init__(self, mode: str, release: threading.Event):
        self.mode, self.release = mode, release
        self.text, self.finish_reason, self.completion_tokens = "", None, 0
        self.closed = threading.Event()
        self.cancelled = threading.Event()

    def usage(self):
        return {"prompt_tokens": 3, "completion_tokens": self.completion_tokens,
                "total_tokens": 3 + self.completion_tokens}

    def __iter__(self):
        if self.mode == "held":  # in flight until the test releases it
            self.release.wait(30)
            yield from self._pieces(["done"])
        elif self.mode == "endless":  # never ends by itself: only close() stops it
            while not self.closed.is_set():
                yield from self._pieces(["x "])
        else:
            yield from self._pieces(["Hello", " there"])
        self.finish_reason = "stop"

    def _pieces(self, pieces):
        for piece in pieces:
            self.text += piece
            self.completion_tokens += 1
            yield piece

    def close(self):
        self.closed.set()

    def cancel(self):  # any thread: the real one takes a waiting request out of the engine's line
        self.cancelled.set()


class FakeAssistant:
    def __init__(self):
        self.base = SimpleNamespace(name="tiny-base")
        self.engine = SimpleNamespace(slots=1)
        self.registry = SimpleNamespace(usable_names=lambda: ["alpha"])
        self.mode, self.release, self.answers = "quick", threading.Event(), []

    def adapters(self):
        return []

    def answer(self, messages, model, settings, ground=False, stop=()):
        from assistant.registry import UnknownAdapter

        if model not in ("base", "auto", "alpha"):
            raise UnknownAdapter(model, ["alpha"])
        answer = FakeAnswer(self.mode, self.release)
        self.answers.append(answer)
        return answer


class Server:
    """uvicorn in a thread on a free loopback port, stopped at the end."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, what="the test server to start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.port = port
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _users() -> Users:
    return Users({"fay": User("fay", "farmer", "scrypt$x", hash_key(FARMER_KEY)),
                  "tom": User("tom", "trainer", "scrypt$x", hash_key(TRAINER_KEY))})


@pytest.fixture()
def fake():
    return FakeAssistant()


@pytest.fixture()
def keyed(fake):
    app = create_api(fake, Access(_users()), Clients(), per_user=2, queue_size=8)
    with Server(app) as url:
        yield fake, url
    fake.release.set()


@pytest.fixture()
def local(fake):
    app = create_api(fake, Access(None), Clients(), queue_size=1)  # 1 slot + 1 waiting
    with Server(app) as url:
        yield fake, url, app
    fake.release.set()


def _chat(**extra) -> dict:
    return {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], **extra}


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# parsing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "alpha"}, "messages"),
    ({"model": "alpha", "messages": []}, "messages"),
    ({"model": "alpha", "messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
    ({"model": "alpha", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"model": "alpha", "messages": ["hi"]}, "messages[0]"),
    (_chat(max_tokens=0), "max_tokens"),
    (_chat(max_tokens=10**9), "max_tokens"),
    (_chat(max_completion_tokens=5000), "max_completion_tokens"),
    (_chat(temperature=3), "temperature"),
    (_chat(temperature="hot"), "temperature"),
    (_chat(top_p=0), "top_p"),
    (_chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (_chat(stop=3), "stop"),
    (_chat(stream="yes"), "stream"),
    (_chat(max_token=5), "max_token"),
    (_chat(x_assistant={"ground": "yes"}), "x_assistant.ground"),
    (_chat(x_assistant={"shout": True}), "x_assistant"),
    (_chat(model=5), "model"),
    (_chat(temperature=float("inf")), "temperature"),
    (_chat(temperature=float("nan")), "temperature"),
    (_chat(max_tokens=5.0), "max_tokens"),
    ({"model": "alpha", "messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    (_chat(stop=["\udfff"]), "stop"),
])
def test_bad_requests_name_the_field(body, param):
    with pytest.raises(ApiError) as caught:
        schemas.parse_chat_request(body)
    assert (caught.value.status, caught.value.param) == (400, param)


@pytest.mark.parametrize("model", ["../etc/passwd", "a/b", "a\\b"])
def test_a_model_with_a_path_separator_is_not_found_and_says_why(model):
    with pytest.raises(ApiError) as caught:
        schemas.parse_chat_request(_chat(model=model))
    assert caught.value.status == 404 and "path separator" in caught.value.message


def test_a_good_request_becomes_plain_values():
    chat = schemas.parse_chat_request(_chat(stream=True, stop="\n", max_completion_tokens=9, temperature=0.5,
                                            seed=4, stream_options={"include_usage": True},
                                            x_assistant={"ground": True},
                                            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]))
    assert (chat.stream, chat.include_usage, chat.stop, chat.ground) == (True, True, ("\n",), True)
    assert (chat.settings.max_tokens, chat.settings.temperature, chat.settings.seed) == (9, 0.5, 4)
    assert chat.messages == [{"role": "user", "content": "hi"}]


# over HTTP --------------------------------------------------------------------------------------

def test_keys_and_roles(keyed):
    _fake, url = keyed
    with httpx.Client(base_url=url) as client:
        none = client.get("/v1/models")
        assert none.status_code == 401 and none.json()["error"]["code"] == "missing_api_key"
        assert client.get("/v1/models", headers=_auth(FARMER_KEY)).status_code == 200
        farmer = client.delete("/v1/models/alpha", headers=_auth(FARMER_KEY))
        assert farmer.status_code == 403 and farmer.json()["error"]["code"] == "insufficient_role"
        answer = client.post("/v1/chat/completions", json=_chat(), headers=_auth(FARMER_KEY))
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "Hello there"


def test_a_user_may_have_only_so_many_answers_in_flight(keyed):
    fake, url = keyed
    fake.mode = "held"
    with httpx.Client(base_url=url, timeout=30) as a, httpx.Client(base_url=url, timeout=30) as b:
        with a.stream("POST", "/v1/chat/completions", json=_chat(stream=True), headers=_auth(FARMER_KEY)) as one, \
                b.stream("POST", "/v1/chat/completions", json=_chat(stream=True), headers=_auth(FARMER_KEY)) as two:
            assert one.status_code == two.status_code == 200  # headers back: both are in flight
            third = httpx.post(f"{url}/v1/chat/completions", json=_chat(), headers=_auth(FARMER_KEY))
            assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_requests"
            other = httpx.get(f"{url}/v1/models", headers=_auth(TRAINER_KEY))
            assert other.status_code == 200  # another user is not held up
            fake.release.set()
            assert "[DONE]" in one.read().decode() and "[DONE]" in two.read().decode()
    assert httpx.post(f"{url}/v1/chat/completions", json=_chat(), headers=_auth(FARMER_KEY)).status_code == 200


def test_a_full_queue_is_503(local):
    fake, url, _app = local
    fake.mode = "held"
    with httpx.Client(base_url=url, timeout=30) as a, httpx.Client(base_url=url, timeout=30) as b:
        with a.stream("POST", "/v1/chat/completions", json=_chat(stream=True)) as one, \
                b.stream("POST", "/v1/chat/completions", json=_chat(stream=True)) as two:
            assert one.status_code == two.status_code == 200
            full = httpx.post(f"{url}/v1/chat/completions", json=_chat())
            assert full.status_code == 503 and full.json()["error"]["code"] == "engine_overloaded"
            assert full.headers["retry-after"]
            fake.release.set()
            one.read(), two.read()


def test_a_client_that_leaves_mid_stream_closes_its_answer(local):
    fake, url, app = local
    fake.mode = "endless"
    with httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=_chat(stream=True)) as response:
            lines = response.iter_lines()
            first = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
            assert first["x_assistant"]["adapter"] == "alpha"
            assert json.loads(next(line for line in lines if line.startswith("data: "))[6:])["choices"][0]["delta"]
    # the connection is closed here (the client left mid-answer)
    assert fake.answers[-1].closed.wait(30), "the answer was not closed when its client left"
    assert fake.answers[-1].cancelled.is_set(), "the answer was not cancelled when its client left"
    wait_for(lambda: app.state.door.total == 0, timeout=30, what="the request to leave the door")


def test_a_client_that_leaves_a_whole_answer_closes_it(local):
    fake, url, app = local
    fake.mode = "endless"
    body = json.dumps(_chat()).encode()
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        wait_for(lambda: fake.answers, timeout=30, what="the answer to start")
    assert fake.answers[-1].closed.wait(30), "the answer was not closed when its client left"
    assert fake.answers[-1].cancelled.is_set(), "the answer was not cancelled when its client left"
    wait_for(lambda: app.state.door.total == 0, timeout=30, what="the request to leave the door")


def test_refusals_in_openai_shape(local):
    _fake, url, _app = local
    with httpx.Client(base_url=url) as client:
        for response, status, code in [
            (client.post("/v1/chat/completions", content=b"{not json", headers=JSON), 400, "invalid_json"),
            (client.post("/v1/chat/completions", content=json.dumps(_chat()).encode(),
                         headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
            (client.post("/v1/chat/completions", json=_chat(model="nope")), 404, "model_not_found"),
            (client.get("/v1/nothing"), 404, "not_found"),
            (client.post("/v1/chat/completions", content=b"x" * (2 * 2**20), headers=JSON), 413, "request_too_large"),
            # no Content-Length (chunked): refused once the first MB has passed, not read to its end
            (client.post("/v1/chat/completions", content=iter([b"x" * 2**16] * 64), headers=JSON), 413,
             "request_too_large"),
            (client.post("/v1/chat/completions", content=b"[" * 100_000, headers=JSON), 400, "invalid_json"),
            (client.post("/v1/chat/completions", headers=JSON, content=b'{"model": "alpha", "messages": '
                                                                      b'[{"role": "user", "content": "\\ud800"}]}'),
             400, "invalid_value"),
        ]:
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["code"] == code and error["message"] and set(error) == {"message", "type", "param", "code"}
