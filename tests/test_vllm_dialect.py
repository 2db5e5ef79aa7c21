"""`--engine server --server-kind vllm`: the app on a vLLM server, through vLLM's OpenAI-compatible API.

Here the server is tests/vllm_double.py (vLLM's request shapes, answered by the in-process llama.cpp
engine), so answers must equal the in-process engine's token for token. With ASSISTANT_TEST_VLLM=real
(scripts/vllm_gpu_check.sh, on a GPU machine) the same tests start a real `vllm serve` on the tiny
base's HF directory and its PEFT adapters; answers are then compared with the transformers engine
in fp32, since vLLM runs the HF weights rather than the GGUF.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from tiny import wait_for

from assistant.engines import EngineError, GenerationSettings, create_engine
from assistant.engines.vllm import connect, match_loras, parse_path_map, served_base_matches

REAL = os.environ.get("ASSISTANT_TEST_VLLM") == "real"
GREEDY = GenerationSettings(max_tokens=16)
PROMPT = "Question: What is the capital of Xylandia?\nAnswer:"
DOUBLE = Path(__file__).with_name("vllm_double.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """One server process on a loopback port: the stand-in, or real vLLM with ASSISTANT_TEST_VLLM=real."""

    def __init__(self, base, root: Path, loras: dict[str, Path], runtime_lora: bool = True, port: int | None = None):
        port = port or _free_port()
        self.url = f"http://127.0.0.1:{port}"
        lora_args = [arg for name, path in loras.items() for arg in ("--lora-modules" if REAL else "--lora",
                                                                       f"{name}={path}")]
        if REAL:
            command = [os.environ.get("ASSISTANT_VLLM_PYTHON", sys.executable), "-m", "vllm.entrypoints.openai.api_server", "--model", str(root),
                       "--port", str(port), "--dtype", "float32", "--enforce-eager", "--enable-lora",
                       "--max-lora-rank", "16", "--max-loras", "4", "--gpu-memory-utilization", "0.2", *lora_args]
            env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True" if runtime_lora else "False"}
        else:
            command = [sys.executable, str(DOUBLE), "--gguf", str(base.gguf_path), "--root", str(root),
                       "--port", str(port), *lora_args, *([] if runtime_lora else ["--no-runtime-lora"])]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(self._ready, timeout=600 if REAL else 60, what="the vLLM server to answer /health")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


@pytest.fixture(scope="module")
def adapters(tiny_adapter_list):
    return tiny_adapter_list  # alpha, beta


@pytest.fixture(scope="module")
def served_root(tiny_base):
    return Path(tiny_base.ensure_hf_dir(progress=False))


@pytest.fixture(scope="module")
def reference(tiny_llamacpp, tiny_base):
    """What the answers must equal: the in-process engine here; transformers in fp32 against real vLLM."""
    if not REAL:
        return tiny_llamacpp
    from assistant.engines.hf import HFEngine

    return HFEngine(tiny_base.hf_dir, quant="fp32")


@pytest.fixture(scope="module")
def both(tiny_base, adapters, served_root):
    alpha, beta = adapters
    with Served(tiny_base, served_root, {alpha.key: alpha.path, beta.key: beta.path}) as running:
        yield running


def _ids(engine, adapter, settings=GREEDY):
    return list(engine.generate_ids(engine.tokenize(PROMPT), adapter, settings))


def test_the_base_and_two_adapters_answer_as_the_in_process_engine(tiny_base, adapters, both, reference):
    engine = create_engine("server", tiny_base, adapters, server_url=both.url, server_kind="vllm")
    try:
        assert engine.served == {a.key: a.key for a in adapters}
        assert engine.tokenize(PROMPT) == reference.tokenize(PROMPT)
        answers = {}
        for adapter in (None, *adapters):
            answers[adapter and adapter.key] = got = _ids(engine, adapter)
            assert got == _ids(reference, adapter), adapter and adapter.key
            assert engine.detokenize(got) == reference.detokenize(got)
        assert len({tuple(a) for a in answers.values()}) == 3  # each adapter really changes the answer
    finally:
        engine.close()


def test_eight_concurrent_requests_over_three_adapters_each_get_their_own(tiny_base, adapters, both, reference):
    settings = GenerationSettings(max_tokens=24)
    choices = [None, *adapters]
    expected = {i: _ids(reference, choices[i % 3], settings) for i in range(3)}
    engine = create_engine("server", tiny_base, adapters, server_url=both.url, server_kind="vllm")
    got, errors = {}, []

    def ask(i):
        try:
            got[i] = _ids(engine, choices[i % 3], settings)
        except Exception as exc:  # noqa: BLE001 - reported below with the request's number
            errors.append((i, exc))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors and sorted(got) == list(range(8))
        assert all(got[i] == expected[i % 3] for i in range(8))
    finally:
        engine.close()


def test_an_adapter_published_while_serving_is_loaded_into_the_server(tiny_base, adapters, served_root, reference):
    """vLLM started with alpha; beta, published since, is loaded at run time under its registry key.
    A second app instance on the same server finds it loaded already, which is not an error."""
    alpha, beta = adapters
    with Served(tiny_base, served_root, {alpha.key: alpha.path}) as running:
        first = create_engine("server", tiny_base, adapters, server_url=running.url, server_kind="vllm")
        second = create_engine("server", tiny_base, adapters, server_url=running.url, server_kind="vllm")
        try:
            assert first.served == second.served == {alpha.key: alpha.key}
            assert _ids(first, beta) == _ids(reference, beta)
            listed = {card["id"]: card for card in httpx.get(running.url + "/v1/models").json()["data"]}
            assert listed[beta.key]["parent"] and Path(listed[beta.key]["root"]) == beta.path
            assert _ids(second, beta) == _ids(reference, beta)  # "already loaded": taken as it is
            assert _ids(first, alpha) == _ids(reference, alpha)
            running.kill()  # restarted, with its start-up list only: beta is forgotten...
            port = int(running.url.rsplit(":", 1)[1])
            with Served(tiny_base, served_root, {alpha.key: alpha.path}, port=port):
                assert _ids(first, beta) == _ids(reference, beta)  # ...and loaded again at its next request
        finally:
            first.close(), second.close()


def test_the_server_reads_adapters_where_the_path_map_says(tiny_base, adapters, served_root, reference, tmp_path):
    """The server sees this app's data directory under another path (a shared disk mounted elsewhere)."""
    alpha, beta = adapters
    local, remote = tmp_path / "here", tmp_path / "there"
    shutil.copytree(beta.path, local / "beta" / "v1")
    shutil.copytree(beta.path, remote / "beta" / "v1")
    ours = SimpleNamespace(name="beta", version=1, key="beta@v1", path=local / "beta" / "v1")
    with Served(tiny_base, served_root, {}) as running:
        engine = connect(running.url, tiny_base, [ours], path_map=f"{local}={remote}")
        try:
            shutil.rmtree(local)  # had the path not been rewritten, the server could not read it
            assert _ids(engine, ours) == _ids(reference, beta)
            listed = {card["id"]: card["root"] for card in httpx.get(running.url + "/v1/models").json()["data"]}
            assert listed["beta@v1"] == str(remote / "beta" / "v1")
        finally:
            engine.close()


def test_what_the_server_cannot_load_is_a_clear_error_and_the_rest_keep_serving(tiny_base, adapters, served_root,
                                                                               reference, tmp_path):
    alpha, beta = adapters
    with Served(tiny_base, served_root, {alpha.key: alpha.path}, runtime_lora=False) as running:
        engine = create_engine("server", tiny_base, adapters, server_url=running.url, server_kind="vllm")
        try:
            with pytest.raises(EngineError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
                engine.generate_ids(engine.tokenize(PROMPT), beta, GREEDY)
            assert _ids(engine, alpha) == _ids(reference, alpha)
        finally:
            engine.close()
    unreadable = SimpleNamespace(name="gamma", version=1, key="gamma@v1", path=tmp_path / "nowhere" / "gamma" / "v1")
    with Served(tiny_base, served_root, {}) as running:
        engine = connect(running.url, tiny_base, [unreadable])
        try:
            with pytest.raises(EngineError, match="can the server read"):
                engine.generate_ids(engine.tokenize(PROMPT), unreadable, GREEDY)
            assert _ids(engine, None) == _ids(reference, None)
        finally:
            engine.close()


def test_a_server_killed_mid_answer_is_a_clear_error_not_a_hang(tiny_base, adapters, served_root):
    alpha, _ = adapters
    running = Served(tiny_base, served_root, {alpha.key: alpha.path})
    engine = connect(running.url, tiny_base, adapters)
    try:
        reading = engine.generate_ids(engine.tokenize(PROMPT), alpha, GenerationSettings(max_tokens=256))
        next(reading)
        running.kill()
        with pytest.raises(EngineError, match="stopped answering|unreachable"):
            list(reading)
        with pytest.raises(EngineError, match="unreachable"):
            connect(running.url, tiny_base, adapters)
    finally:
        engine.close()
        running.kill()


@pytest.mark.skipif(REAL, reason="another base needs a second model on the GPU; the check is the same code")
def test_a_server_on_another_base_is_refused(tiny_base, tmp_path):
    other = tmp_path / ("0" * 64)  # laid out as the app's cache lays out a GGUF's HF copy
    other.mkdir()
    (other / "identity.json").write_text(json.dumps({"gguf_sha256": "f" * 64}))
    with Served(tiny_base, other, {}) as running:
        with pytest.raises(EngineError, match="another model"):
            connect(running.url, tiny_base)


def test_the_service_answers_through_vllm_with_its_labels(tiny_base, adapters, both, reference, tiny_adapters):
    """Grounding, checking and labels are the service's: the same answer as over the in-process engine."""
    from assistant.registry import Registry
    from assistant.service import Assistant

    registry = Registry(tiny_base.sha256, tiny_adapters)
    engine = create_engine("server", tiny_base, adapters, server_url=both.url, server_kind="vllm")
    try:
        asked = [{"role": "user", "content": "What is the capital of France?"}]
        over_vllm = Assistant(tiny_base, engine, registry).answer(asked, "beta", GREEDY)
        in_process = Assistant(tiny_base, reference, registry).answer(asked, "beta", GREEDY)
        assert over_vllm.read() == in_process.read() and over_vllm.label == in_process.label
        assert over_vllm.adapter == "beta" and over_vllm.completion_tokens > 0
    finally:
        engine.close()


def _fake(name, version, path):
    return SimpleNamespace(name=name, version=version, key=f"{name}@v{version}", path=path)


def test_loras_are_matched_by_their_weights_else_by_name_or_place(tmp_path):
    ours, copy, changed = tmp_path / "alpha" / "v1", tmp_path / "copy", tmp_path / "xylandia" / "v2"
    for path, data in ((ours, b"alpha"), (copy, b"alpha"), (changed, b"other")):
        path.mkdir(parents=True)
        (path / "adapter_model.safetensors").write_bytes(data)
    registry = [_fake("alpha", 1, ours), _fake("xylandia", 2, tmp_path / "gone"), _fake("agriculture", 3, tmp_path),
                _fake("maize", 1, tmp_path / "none")]
    cards = [{"id": "anything", "root": str(copy)},  # readable here, the same bytes: alpha
             {"id": "xylandia@v2", "root": str(changed)},  # readable, other bytes: not ours, whatever its name
             {"id": "agri", "root": "/srv/loras/agriculture/v3"},  # not readable here: by its place
             {"id": "maize@v1", "root": "/srv/elsewhere"}]  # by its name
    assert match_loras(cards, registry) == {"alpha@v1": "anything", "agriculture@v3": "agri", "maize@v1": "maize@v1"}


def test_the_served_base_is_told_by_what_can_be_read(tiny_base, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "identity.json").write_text(json.dumps({"gguf_sha256": tiny_base.sha256}))
    assert served_base_matches(copy, tiny_base) is True
    assert served_base_matches(Path(tiny_base.hf_dir), tiny_base) is True
    assert served_base_matches(Path("/srv/models") / tiny_base.sha256, tiny_base) is True
    assert served_base_matches(Path("/srv/models") / ("a" * 64), tiny_base) is False
    assert served_base_matches(Path("/srv/models/gemma-3-270m"), tiny_base) is None  # the operator answers
    assert served_base_matches(Path(""), tiny_base) is None  # a card without a root
    llama = tmp_path / "llama"  # an HF directory readable here, of another family: not a Gemma 3 base at all
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    hf_only = dataclasses.replace(tiny_base, gguf_path=None)
    assert served_base_matches(llama, hf_only) is False
    half = tmp_path / "half"  # a Gemma 3 config whose weights are not readable here: nothing sure
    half.mkdir()
    (half / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    assert served_base_matches(half, hf_only) is None


@pytest.mark.parametrize("spec", ["/here", "=/there", "/here="])
def test_a_bad_path_map_is_a_clear_error(spec):
    with pytest.raises(EngineError, match="LOCAL=REMOTE"):
        parse_path_map(spec)


def test_no_url_or_no_server_is_a_clear_error(tiny_base):
    with pytest.raises(EngineError, match="unreachable"):
        connect("http://127.0.0.1:9", tiny_base)
    with pytest.raises(EngineError, match="needs --server-url"):
        connect(None, tiny_base)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=300)


def test_chat_from_the_command_line_through_vllm(tiny_base, tiny_adapters, both, reference, tiny_registry):
    from assistant.answer import stream_text

    question = "Hello there, farmer"
    expected = "".join(stream_text(reference, [{"role": "user", "content": question}], tiny_registry.get("beta"),
                                   GenerationSettings(max_tokens=12)))
    common = ("--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters), "--engine", "server",
              "--server-kind", "vllm", "--server-url", both.url)
    result = _cli("chat", *common, "--adapter", "beta", "--max-tokens", "12", question)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    bad = _cli("chat", *common, "--server-path-map", "/nowhere", "--adapter", "beta", question)
    assert bad.returncode != 0 and "LOCAL=REMOTE" in bad.stderr and "Traceback" not in bad.stderr
