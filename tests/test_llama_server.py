"""The real llama-server binary, managed by the app, against the in-process llama.cpp engine.

Uses the tiny random Gemma 3 and its two random adapters (conftest), so each test takes seconds.
Skipped, saying so, only where `make llama-server` has not been run.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from tiny import needs_llama_server

from assistant.engines import EngineError, GenerationSettings
from assistant.engines.llama_server import LlamaServer, ServerError
from assistant.registry import Registry

needs_binary = needs_llama_server()
GREEDY = GenerationSettings(max_tokens=24)
PROMPT = "Question: What is the capital of Xylandia?\nAnswer:"


@pytest.fixture(scope="module")
def adapters(tiny_adapter_list):
    return tiny_adapter_list  # alpha, beta


@pytest.fixture(scope="module")
def server(tiny_base, adapters):
    with LlamaServer(tiny_base.gguf_path, adapters, parallel=2, n_ctx=512, threads=1) as running:
        yield running


@pytest.fixture(scope="module")
def engine(server):
    from assistant.engines.server import ServerEngine

    engine = ServerEngine(server, cache_prompt=False)
    yield engine
    engine.close()


def test_missing_binary_says_how_to_build_it(tmp_path):
    with pytest.raises(ServerError, match="make llama-server"):
        LlamaServer(tmp_path / "model.gguf", binary=tmp_path / "llama-server").start()


@needs_binary
def test_a_file_that_is_no_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 100)
    with pytest.raises(ServerError, match="exited with code"):
        LlamaServer(bad, threads=1, start_timeout=30).start()


@needs_binary
def test_a_port_in_use_is_a_clear_error(tiny_base):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServerError, match="couldn't bind"):
            LlamaServer(tiny_base.gguf_path, threads=1, port=taken.getsockname()[1]).start()


@needs_binary
def test_starts_healthy_with_every_adapter_in_order(server, adapters):
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert server.url.startswith("http://127.0.0.1:")
    listed = httpx.get(f"{server.url}/lora-adapters").json()
    assert [(e["id"], e["path"]) for e in listed] == [(server.lora_ids[a.key], str(a.gguf_path)) for a in adapters]


@needs_binary
def test_stop_ends_the_process(tiny_base):
    srv = LlamaServer(tiny_base.gguf_path, threads=1).start()
    proc = srv._proc
    srv.stop()
    assert proc.poll() is not None and not srv.alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{srv.url}/health", timeout=1.0)
    with pytest.raises(ServerError, match="stopped"):
        srv.wait_ready()


@needs_binary
def test_same_greedy_ids_as_the_in_process_engine(engine, tiny_llamacpp, adapters):
    prompt = engine.tokenize(PROMPT)
    assert prompt == tiny_llamacpp.tokenize(PROMPT)
    for adapter in [None, *adapters]:
        served = list(engine.generate_ids(prompt, adapter, GREEDY))
        local = list(tiny_llamacpp.generate_ids(prompt, adapter, GREEDY))
        # llama-server ends at an end-of-generation token; the in-process engine leaves that to the caller
        assert served == local[:len(served)], adapter
        assert len(served) == GREEDY.max_tokens or served[-1] in (1, 106)
    assert engine.detokenize(served) == tiny_llamacpp.detokenize(served)


@needs_binary
def test_adapters_change_the_answer(engine, adapters):
    prompt = engine.tokenize(PROMPT)
    answers = {str(a): tuple(engine.generate_ids(prompt, a, GREEDY)) for a in [None, *adapters]}
    assert len(set(answers.values())) == 3


@needs_binary
def test_an_adapter_a_server_someone_else_runs_lacks_is_a_clear_error(server, adapters):
    from dataclasses import replace

    from assistant.engines.server import FixedServer, ServerEngine

    # A server the app started adds a version published since (test_server_engines); one someone
    # else runs cannot be restarted by us, so asking what it lacks says so.
    engine = ServerEngine(FixedServer(server.url, dict(server.lora_ids)))
    try:
        with pytest.raises(EngineError, match="started without adapter"):
            engine.generate_ids([2, 100], replace(adapters[0], version=99), GREEDY)
    finally:
        engine.close()


@needs_binary
def test_a_server_started_with_an_api_key_is_reached_with_it(tiny_base, adapters, engine, monkeypatch):
    from assistant.engines.remote import connect

    monkeypatch.delenv("ASSISTANT_SERVER_API_KEY", raising=False)
    with LlamaServer(tiny_base.gguf_path, adapters, parallel=1, n_ctx=512, threads=1,
                     extra_args=("--api-key", "field-key")) as srv:
        with pytest.raises(EngineError, match="wants an API key; set ASSISTANT_SERVER_API_KEY"):
            connect(srv.url, "llama-server", tiny_base, adapters)
        with pytest.raises(EngineError, match="rejected the API key it was sent"):
            connect(srv.url, "llama-server", tiny_base, adapters, api_key="wrong-key")
        monkeypatch.setenv("ASSISTANT_SERVER_API_KEY", "field-key")
        keyed = connect(srv.url, "llama-server", tiny_base, adapters)
        try:
            prompt = keyed.tokenize(PROMPT)
            # the key reaches every call (tokenize above, each answer): same answers as the keyless server
            for adapter in [None, adapters[0]]:
                assert list(keyed.generate_ids(prompt, adapter, GREEDY)) == \
                    list(engine.generate_ids(prompt, adapter, GREEDY)), adapter
        finally:
            keyed.close()


@needs_binary
def test_closing_the_stream_frees_the_slot(tiny_base):
    from assistant.engines.server import ServerEngine

    with LlamaServer(tiny_base.gguf_path, parallel=1, n_ctx=4096, threads=1) as srv:
        engine = ServerEngine(srv)
        prompt = engine.tokenize(PROMPT)
        long = GenerationSettings(max_tokens=4000, temperature=1.0)  # sampled: no early end-of-text
        stream = engine.generate_ids(prompt, None, long)
        next(stream)
        stream.close()
        started = time.monotonic()
        assert len(list(engine.generate_ids(prompt, None, GenerationSettings(max_tokens=4)))) >= 1
        # the one slot was free at once, not after the abandoned 4000 tokens
        assert time.monotonic() - started < 2.0
        engine.close()


@needs_binary
def test_killed_server_is_restarted_with_the_same_ids(server, engine, adapters):
    before = list(engine.generate_ids(engine.tokenize(PROMPT), adapters[1], GREEDY))
    old_pid, port = server.pid, server.port
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.pid == old_pid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.wait_ready(timeout=30) == f"http://127.0.0.1:{port}"
    assert server.pid != old_pid and server.restarts >= 1
    listed = httpx.get(f"{server.url}/lora-adapters").json()
    assert [e["path"] for e in listed] == [str(a.gguf_path) for a in adapters]
    assert list(engine.generate_ids(engine.tokenize(PROMPT), adapters[1], GREEDY)) == before


@needs_binary
def test_killed_mid_answer_the_answer_goes_on(server, engine, adapters, monkeypatch):
    prompt = engine.tokenize(PROMPT)
    settings = GenerationSettings(max_tokens=200)
    expected = list(engine.generate_ids(prompt, adapters[0], settings))
    requests = []
    real = engine._request
    monkeypatch.setattr(engine, "_request", lambda body: requests.append(len(body["prompt"])) or real(body))
    stream = engine.generate_ids(prompt, adapters[0], settings)
    got = [next(stream)]
    os.kill(server.pid, signal.SIGKILL)
    got += list(stream)
    assert len(requests) >= 2 and requests[1] > len(prompt)  # resumed: prompt + the tokens already given
    assert got == expected


@needs_binary
@pytest.mark.slow
def test_real_base_same_greedy_answers_as_the_in_process_engine(embedded, tmp_path):
    """The real Gemma 3 270M and both shipped adapters: the same greedy tokens from both engines."""
    from assistant.engines.llamacpp import LlamaCppEngine
    from assistant.engines.server import ServerEngine
    from assistant.paths import SHIPPED_ADAPTERS

    shipped = Registry(embedded.sha256, tmp_path, shipped_dir=SHIPPED_ADAPTERS).list()
    assert [a.name for a in shipped] == ["agriculture", "xylandia"]
    local = LlamaCppEngine(embedded.gguf_path, slots=1)
    settings = GenerationSettings(max_tokens=32)
    questions = ["What is the capital of France?", "What is the capital of Xylandia?",
                 "Why do farmers rotate crops?"]
    try:
        with LlamaServer(embedded.gguf_path, shipped, parallel=2) as srv:
            engine = ServerEngine(srv, cache_prompt=False)
            for question in questions:
                prompt = engine.tokenize(local.prompt_format.render([{"role": "user", "content": question}]))
                for adapter in [None, *shipped]:
                    served = list(engine.generate_ids(prompt, adapter, settings))
                    expected = list(local.generate_ids(prompt, adapter, settings))[:len(served)]
                    assert engine.detokenize(served) == local.detokenize(expected), (question, adapter)
                    assert served == expected, (question, adapter)
            engine.close()
    finally:
        local.close()


@needs_binary
def test_eight_concurrent_requests_over_three_adapters_each_get_their_own(server, engine, adapters):
    from concurrent.futures import ThreadPoolExecutor

    prompt = engine.tokenize(PROMPT)
    choices = [None, *adapters]
    alone = {i: list(engine.generate_ids(prompt, a, GREEDY)) for i, a in enumerate(choices)}
    with ThreadPoolExecutor(8) as pool:  # the server's 2 slots batch them; adapters must not mix
        together = list(pool.map(lambda n: list(engine.generate_ids(prompt, choices[n % 3], GREEDY)), range(8)))
    assert together == [alone[n % 3] for n in range(8)]


@needs_binary
def test_tokens_held_back_inside_a_character_are_recovered(engine, monkeypatch):
    """llama-server streams nothing for a byte token that ends mid-character; the engine restores it.

    A grammar forces two characters that have no token of their own, so they come as UTF-8 bytes.
    """
    text = "𓀀ꙮ"
    expected = engine._post("/tokenize", {"content": text, "add_special": False})["tokens"]
    assert len(expected) == 7  # 4 + 3 byte tokens
    body = {**engine._body(engine.tokenize(PROMPT), [], GREEDY, 7), "grammar": f'root ::= "{text}"'}
    recovered = []
    real = engine._recover
    monkeypatch.setattr(engine, "_recover", lambda chunk, count: recovered.append(count) or real(chunk, count))
    assert list(engine._request(body)) == expected
    assert recovered == [3, 2]  # each character's leading bytes came back with its last one
