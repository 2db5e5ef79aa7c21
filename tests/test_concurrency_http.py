"""The concurrency storm through the running app's HTTP API (gradio_client), as clients use it.

Requests outnumber the slots and spread over three adapters; some are cancelled while they wait,
some mid-stream, and some come from a client process that is killed mid-answer. Every request that
is not abandoned gets its own adapter's answer; afterwards the engine reports every slot free and
nobody waiting, and a further round of requests is served at once (nothing stuck in the queue).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from browser import running_app

from assistant.answer import Answer
from assistant.engines import GenerationSettings
from assistant.grounding.plan import Plan
from ui.chat import _safe_text

QUESTION = "What grows well in sandy soil?"
ADAPTERS = ("none", "alpha", "beta")
LABELS = {"none": "base model", "alpha": "alpha v1", "beta": "beta v1"}
MAX_TOKENS = 64
KINDS = ("complete", "cancel_waiting", "complete", "cancel_streaming", "complete", "complete")
REQUESTS = 24
pytestmark = pytest.mark.browser  # it runs the app in a subprocess, like the browser tests


def _ask(url: str, adapter: str):
    """A new chat (its own client, so its own session: a chat's history lives in the session)."""
    from gradio_client import Client

    return Client(url, verbose=False).submit(QUESTION, [], adapter, MAX_TOKENS, 0.0, False, api_name="/respond")


def _answer_of(result) -> str:
    display = result[0]
    content = display[-1]["content"] if display else ""
    return "".join(part.get("text", "") for part in content) if isinstance(content, list) else content


def _expected(engine, registry) -> dict[str, str]:
    settings = GenerationSettings(max_tokens=MAX_TOKENS)
    out = {}
    for name in ADAPTERS:
        adapter = registry.get(name) if name != "none" else None
        # The final text: a loop the service cuts is gone from it, though its words were streamed.
        plan = Plan(adapter=adapter.name if adapter else None, messages=[{"role": "user", "content": QUESTION}])
        text = Answer.start(engine, plan, adapter, settings).read()
        # as the chat tab shows it: the text as text, the label, its trust mark (these adapters have no Q&A)
        out[name] = f"{_safe_text(text)}\n\n<sub>— {LABELS[name]} · ⚠️ **Not checked — may be wrong**</sub>"
    return out


def _killed_client(url: str, adapter: str) -> subprocess.Popen:
    """A client process that sends a question and is killed once the answer starts streaming."""
    code = textwrap.dedent(f"""
        import sys, time
        from gradio_client import Client
        job = Client({url!r}, verbose=False).submit({QUESTION!r}, [], {adapter!r}, {MAX_TOKENS}, 0.0, False,
                                                  api_name="/respond")
        deadline = time.time() + 60
        while not job.outputs() and time.time() < deadline:
            time.sleep(0.01)
        print("streaming", flush=True)
        time.sleep(600)  # killed here, mid-answer
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def _status(client) -> dict:
    status = client.predict(api_name="/engine_status")
    return json.loads(status) if isinstance(status, str) else status


def test_storm_through_the_http_api(tiny_base, tiny_adapters, tiny_llamacpp, tiny_registry):
    from gradio_client import Client
    from tiny import wait_for

    expected = _expected(tiny_llamacpp, tiny_registry)
    assert len(set(expected.values())) == len(ADAPTERS)
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters)) as url:
        client = Client(url, verbose=False)
        slots = _status(client)["slots"]
        killed = [_killed_client(url, ADAPTERS[i % len(ADAPTERS)]) for i in range(3)]
        plan = [(ADAPTERS[i % len(ADAPTERS)], KINDS[i % len(KINDS)]) for i in range(REQUESTS)]
        jobs = [(name, kind, _ask(url, name)) for name, kind in plan]
        for proc in killed:  # each has its answer streaming: kill it there
            assert proc.stdout.readline().strip() == "streaming"
            proc.kill()
            proc.wait()
        for _name, kind, job in jobs:
            if kind == "cancel_waiting":
                job.cancel()
            elif kind == "cancel_streaming":
                wait_for(lambda job=job: job.outputs() or job.done(), timeout=120, what="the answer to start")
                job.cancel()
        for name, kind, job in jobs:
            if kind == "complete":
                assert _answer_of(job.result(timeout=120)) == expected[name], name
        settled = wait_for(lambda: (s := _status(client))["busy"] == 0 and s, timeout=60,
                           what="every slot to be freed")
        assert settled == {"slots": slots, "free": slots, "busy": 0, "waiting": 0}
        # Nothing is stuck in the app's queue either: a second round, twice the slots, is served.
        again = [(name, _ask(url, name)) for name in ADAPTERS * slots]
        for name, job in again:
            assert _answer_of(job.result(timeout=120)) == expected[name], name
