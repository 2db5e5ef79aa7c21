"""Fair chat queueing through real HTTP (gradio_client against the app, launched in this process so
the test can hold answers back): one user's burst is refused past the per-user limit with one
clear sentence, another user is served meanwhile, and the count is released whenever an answer
ends, fails or is cancelled."""

from __future__ import annotations

import threading

import pytest

from assistant.auth import Access, Users, add_user
from ui import fairness

pytestmark = pytest.mark.browser  # it serves the app on a port, like the browser tests
PASSWORD = "a long password"
LIMIT = fairness.PER_USER


@pytest.fixture(scope="module")
def app(tiny_base, tmp_path_factory):
    """(url, held): questions starting with "hold" wait until the test releases them."""
    from browser import free_port
    from starlette.middleware import Middleware

    from assistant.service import Assistant
    from ui import gate
    from ui.app import build, queued
    from ui.clients import Clients

    data = tmp_path_factory.mktemp("fair-data")
    users_path = data / "users.json"
    for name in ("amina", "bongani"):
        add_user(users_path, name, "farmer", PASSWORD)
    users = Users.load(users_path)
    assistant = Assistant.open(str(tiny_base.gguf_path), data_dir=data, shipped_dir=None,
                               slots=LIMIT + 1)  # one slot more than a user may fill: another user's gets in
    held = Held(assistant)
    access, clients = Access(users), Clients()
    demo = queued(build(assistant, None, access))
    fairness.limit_per_user(demo, "chat", clients)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                auth=gate.login_callback(users),
                app_kwargs={"middleware": [Middleware(gate.Gate, access=access, clients=clients,
                                                      max_upload_bytes=2 ** 20)]})
    try:
        yield f"http://127.0.0.1:{port}/", held
    finally:
        held.release.set()
        demo.close()


class Held:
    """Wraps the assistant's answer service: "hold…" questions start, then wait for `release` (inside
    the chat handler, before its first token, holding the user's place as a slow answer does);
    "hold and fail" then raises, as a broken engine would."""

    def __init__(self, assistant):
        self.release, self.started, self._lock = threading.Event(), [], threading.Lock()
        real = assistant.answer

        def answer(messages, adapter, settings=None, **options):
            question = messages[-1]["content"]
            if question.startswith("hold"):
                with self._lock:
                    self.started.append(question)
                assert self.release.wait(120), "never released"
                if question.startswith("hold and fail"):
                    raise RuntimeError("the engine broke")
            return real(messages, adapter, settings, **options)

        assistant.answer = answer

    def running(self) -> int:
        with self._lock:
            return len(self.started)

    def reset(self) -> None:
        with self._lock:
            self.started.clear()
        self.release.clear()


def _client(url, user):
    from gradio_client import Client

    return Client(url, auth=(user, PASSWORD), verbose=False, download_files=False)


def _ask(client, question):
    return client.submit(question, [], "none", 16, 0.0, False, api_name="/respond")


def _text(result) -> str:
    content = result[0][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def _fill(url, held, user, questions):
    """`user` asks these (all held); returns once every one is being answered."""
    from tiny import wait_for

    client = _client(url, user)
    jobs = [_ask(client, q) for q in questions]
    wait_for(lambda: held.running() == len(questions), timeout=60, what="the held questions to start")
    return client, jobs


def test_a_burst_is_refused_past_the_limit_while_another_user_is_served(app):
    from gradio_client.exceptions import ValidationError

    url, held = app
    held.reset()
    amina, jobs = _fill(url, held, "amina", [f"hold {i}" for i in range(LIMIT)])
    with pytest.raises(ValidationError, match=f"You already have {LIMIT} questions waiting; wait for an answer first."):
        _ask(amina, "and one more").result(timeout=60)
    # Another user, meanwhile, is served at once (the limit left a slot free for them).
    answer = _text(_client(url, "bongani").predict("Hello", [], "none", 16, 0.0, False, api_name="/respond"))
    assert "— base model" in answer and not any(job.done() for job in jobs)
    held.release.set()
    for job in jobs:
        assert "— base model" in _text(job.result(timeout=60))
    # Answered: the count is free again.
    assert "— base model" in _text(amina.predict("Hello again", [], "none", 16, 0.0, False, api_name="/respond"))


def test_failed_and_cancelled_answers_release_the_count(app):
    from tiny import wait_for

    url, held = app
    held.reset()
    amina, failing = _fill(url, held, "amina", [f"hold and fail {i}" for i in range(LIMIT)])
    held.release.set()
    for job in failing:
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's AppError; the message is Gradio's own
            job.result(timeout=60)
    assert "— base model" in _text(amina.predict("After failures", [], "none", 16, 0.0, False, api_name="/respond"))

    held.reset()
    amina, waiting = _fill(url, held, "amina", [f"hold {i}" for i in range(LIMIT)])
    waiting[0].cancel()  # closes the answer's stream: Gradio drops the event, and the count with it
    wait_for(lambda: waiting[0].done(), timeout=60, what="the cancelled job to end")
    refill = _ask(amina, "hold again")
    wait_for(lambda: held.running() == LIMIT + 1, timeout=60, what="the refill to start")
    held.release.set()
    assert "— base model" in _text(refill.result(timeout=60))
