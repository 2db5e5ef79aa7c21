"""The API and the chat tab at once, on one app with no users file (this machine only, no key):
two concurrent API requests on different adapters each get their own adapter's answer (the same
text as the in-process `stream_text`) while a browser page chats with a third choice; a streamed
API answer dropped mid-way leaves every engine slot free."""

from __future__ import annotations

import re
import threading

import pytest
from browser import ask, browser, last_answer, running_app

from assistant.answer import stream_text
from assistant.engines import GenerationSettings

pytestmark = pytest.mark.browser
QUESTION = "What grows well in sandy soil?"
MAX_TOKENS = 48


def _expected(engine, registry, name: str | None, max_tokens: int = MAX_TOKENS) -> str:
    adapter = registry.get(name) if name else None
    return "".join(stream_text(engine, [{"role": "user", "content": QUESTION}], adapter,
                               GenerationSettings(max_tokens=max_tokens)))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _client(url: str):
    from openai import OpenAI

    return OpenAI(base_url=url.rstrip("/") + "/v1", api_key="unused-on-a-local-app", max_retries=0, timeout=180)


def _status(url: str) -> dict:
    import json

    from gradio_client import Client

    status = Client(url, verbose=False).predict(api_name="/engine_status")
    return json.loads(status) if isinstance(status, str) else status


def test_api_requests_on_two_adapters_while_a_page_chats(tiny_base, tiny_adapters, tiny_llamacpp, tiny_registry):
    from tiny import wait_for

    expected = {name: _expected(tiny_llamacpp, tiny_registry, name) for name in ("alpha", "beta")}
    page_expected = _expected(tiny_llamacpp, tiny_registry, None, 256)
    assert expected["alpha"] != expected["beta"]
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters)) as url, browser() as b:
        page = b.new_page()
        page.goto(url)
        ask(page, QUESTION)  # the base model, the page's default choice
        started = threading.Barrier(2, timeout=120)  # both API answers in flight before either is read on
        got: dict[str, str] = {}
        failures: list[BaseException] = []

        def ask_api(name: str) -> None:
            try:
                stream = _client(url).chat.completions.create(
                    model=name, messages=[{"role": "user", "content": QUESTION}], max_tokens=MAX_TOKENS, stream=True,
                    extra_body={"x_assistant": {"notes": False}})  # the model's words alone, as _expected
                chunks = iter(stream)
                first = next(chunks)
                assert first.model_extra["x_assistant"]["adapter"] == name
                started.wait()
                got[name] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            except BaseException as exc:  # noqa: B036 - re-raised in the test's thread
                failures.append(exc)
                started.abort()

        threads = [threading.Thread(target=ask_api, args=(name,)) for name in expected]
        for thread in threads:
            thread.start()
        answer = last_answer(page, "base model")
        for thread in threads:
            thread.join(timeout=180)
        assert not failures, failures
        assert got == expected
        assert _norm(page_expected)[:40] in _norm(answer), answer
        wait_for(lambda: (s := _status(url))["busy"] == 0 and s["waiting"] == 0, timeout=60,
                 what="every engine slot to be free")

        # A streamed answer dropped after its first pieces: its slot comes back.
        with _client(url).chat.completions.with_streaming_response.create(
                model="alpha", messages=[{"role": "user", "content": QUESTION}], max_tokens=1500,
                stream=True) as response:
            lines = response.iter_lines()
            assert sum(1 for line in (next(lines) for _ in range(6)) if line.startswith("data: ")) >= 2
        wait_for(lambda: (s := _status(url))["busy"] == 0 and s["waiting"] == 0, timeout=60,
                 what="the dropped answer's slot to be free")
        assert _client(url).chat.completions.create(model="beta", messages=[{"role": "user", "content": QUESTION}],
                                                    max_tokens=MAX_TOKENS).choices[0].message.content


def test_sigterm_mid_stream_ends_the_stream_and_the_app(tiny_base, tiny_adapters, tmp_path):
    """A service manager's stop while an API answer streams: the stream ends properly ([DONE]) and the
    app exits cleanly, as it does with only Gradio chats (ui.app._interrupt_on_sigterm)."""
    import os
    import subprocess
    import sys

    import httpx
    from browser import free_port
    from tiny import wait_for

    port, log = free_port(), open(tmp_path / "app.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port), "--base",
                             str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()
            try:
                return httpx.get(url + "/v1/models", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=180, what="the app to start")
        body = {"model": "alpha", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 1500,
                "stream": True}
        with httpx.Client(timeout=120) as client, client.stream("POST", url + "/v1/chat/completions",
                                                                 json=body) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))  # the answer is under way
            proc.terminate()
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
