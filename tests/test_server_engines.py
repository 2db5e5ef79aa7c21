"""The server engines as the app opens them: `--engine llama-server` (started and stopped by the
app) and `--engine server --server-url` (one someone else runs, its adapters matched to ours)."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import httpx
import pytest
from tiny import needs_llama_server

from assistant.engines import EngineError, GenerationSettings, create_engine
from assistant.engines.llama_server import LlamaServer
from assistant.engines.remote import connect, match_adapters

needs_binary = needs_llama_server()
GREEDY = GenerationSettings(max_tokens=16)
PROMPT = "Question: What is the capital of Xylandia?\nAnswer:"


@pytest.fixture(scope="module")
def adapters(tiny_adapter_list):
    return tiny_adapter_list  # alpha, beta


def _fake(name, version, path):
    return SimpleNamespace(name=name, version=version, key=f"{name}@v{version}", gguf_path=path)


def test_adapters_are_matched_by_their_bytes_else_by_name_and_version(tmp_path):
    (tmp_path / "a").mkdir()
    ours = tmp_path / "a" / "adapter.gguf"
    ours.write_bytes(b"alpha lora")
    other = tmp_path / "copy.gguf"
    other.write_bytes(b"alpha lora")  # the same bytes under another name: the same adapter
    changed = tmp_path / "xylandia" / "v2"
    changed.mkdir(parents=True)
    (changed / "adapter.gguf").write_bytes(b"something else")  # readable, other bytes: not ours
    registry = [_fake("alpha", 1, ours), _fake("xylandia", 2, tmp_path / "nowhere" / "adapter.gguf"),
                _fake("agriculture", 3, tmp_path / "none.gguf")]
    listed = [{"id": 0, "path": str(other)}, {"id": 1, "path": str(changed / "adapter.gguf")},
              {"id": 2, "path": "/srv/loras/agriculture/v3/adapter.gguf"},  # not readable here: by its place
              {"id": 3, "path": "/srv/loras/unknown/v1/adapter.gguf"}, {"path": "no id"}, "garbage"]
    assert match_adapters(listed, registry) == {"alpha@v1": 0, "agriculture@v3": 2}


@pytest.mark.parametrize("url, kind, message", [
    (None, "llama-server", "needs --server-url"),
    ("http://127.0.0.1:9", "llama-server", "unreachable"),
    ("http://127.0.0.1:9", "tgi", "not one we speak"),
])
def test_a_server_that_cannot_be_used_is_a_clear_error(tiny_base, url, kind, message):
    with pytest.raises(EngineError, match=message):
        connect(url, kind, tiny_base)


@needs_binary
def test_the_app_managed_server_answers_as_the_in_process_engine_and_stops_with_it(tiny_base, tiny_llamacpp,
                                                                                    adapters):
    engine = create_engine("llama-server", tiny_base, adapters, parallel=2, threads=1, n_ctx=512)
    try:
        assert engine.slots == 2
        server = engine.server
        for adapter in (None, *adapters):
            ids = tiny_llamacpp.tokenize(PROMPT)
            assert list(engine.generate_ids(ids, adapter, GREEDY)) == list(
                tiny_llamacpp.generate_ids(ids, adapter, GREEDY)), adapter and adapter.key
    finally:
        engine.close()
    assert not server.alive()


@needs_binary
def test_a_server_someone_else_runs_is_matched_to_the_registry(tiny_base, tiny_llamacpp, adapters, tmp_path):
    alpha, beta = adapters
    copied = tmp_path / "alpha" / "v1"
    copied.mkdir(parents=True)
    shutil.copy(alpha.gguf_path, copied / "adapter.gguf")  # the operator's own copy: matched by its bytes
    with LlamaServer(tiny_base.gguf_path, [_fake("alpha", 1, copied / "adapter.gguf")], parallel=2, n_ctx=512,
                     threads=1) as running:
        engine = create_engine("server", tiny_base, adapters, server_url=running.url, server_kind="llama-server")
        try:
            assert engine.server.lora_ids == {alpha.key: 0} and engine.slots == 2
            ids = tiny_llamacpp.tokenize(PROMPT)
            assert list(engine.generate_ids(ids, alpha, GREEDY)) == list(tiny_llamacpp.generate_ids(ids, alpha, GREEDY))
            with pytest.raises(EngineError, match="without adapter"):  # beta is not there: a clear error
                engine.generate_ids(ids, beta, GREEDY)
            assert list(engine.generate_ids(ids, None, GREEDY)) == list(tiny_llamacpp.generate_ids(ids, None, GREEDY))
        finally:
            engine.close()
        assert httpx.get(f"{running.url}/health").status_code == 200  # not ours to stop


@needs_binary
def test_a_server_on_another_base_is_refused(tiny_base, tmp_path):
    other = tmp_path / "other.gguf"
    data = bytearray(tiny_base.gguf_path.read_bytes())
    other.write_bytes(bytes(data))
    with LlamaServer(other, parallel=1, n_ctx=256, threads=1) as running:
        with open(other, "ab") as f:
            f.write(b"\0" * 32)  # now other bytes than the base (the server has already read it)
        with pytest.raises(EngineError, match="another model"):
            connect(running.url, "llama-server", tiny_base)


@needs_binary
def test_an_adapter_published_while_serving_is_added_and_no_answer_is_lost(tiny_base, tiny_llamacpp, adapters):
    """The app's llama-server started with alpha alone; beta is published meanwhile. Asking beta
    restarts the server with [alpha, beta] (alpha keeps its id); an alpha answer being read across
    the restart still arrives whole."""
    alpha, beta = adapters
    settings = GenerationSettings(max_tokens=64)
    ids = tiny_llamacpp.tokenize(PROMPT)
    expected = {a.key: list(tiny_llamacpp.generate_ids(ids, a, settings)) for a in adapters}
    engine = create_engine("llama-server", tiny_base, [alpha], parallel=2, threads=1, n_ctx=512)
    try:
        server = engine.server
        assert server.lora_ids == {alpha.key: 0}
        reading = engine.generate_ids(ids, alpha, settings)
        first = [next(reading), next(reading)]
        assert list(engine.generate_ids(ids, beta, settings)) == expected[beta.key]
        assert first + list(reading) == expected[alpha.key]
        assert server.lora_ids == {alpha.key: 0, beta.key: 1} and server.reloads == 1 and server.restarts == 0
        assert list(engine.generate_ids(ids, alpha, settings)) == expected[alpha.key]
    finally:
        engine.close()
