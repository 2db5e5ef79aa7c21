"""Crash safety on the tiny Gemma 3: a training worker killed with SIGKILL mid-run, and adapters
damaged on disk after publishing. Nothing partial is ever listed, leftovers are swept at the next
start, the shipped adapters are untouched, the job says it failed and a retry works; a damaged
adapter is listed as broken with its reason while the others keep answering.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tiny import wait_for

from assistant.engines import EngineError, GenerationSettings
from assistant.fsutil import sha256_file
from assistant.jobs import JobManager
from assistant.paths import SHIPPED_ADAPTERS
from assistant.registry import AdapterError, Registry
from assistant.service import Assistant

SHORT = GenerationSettings(max_tokens=4)


def shipped_state() -> dict[str, str]:
    """sha256 of every shipped adapter file, checked against its manifest as well."""
    state = {}
    for manifest_path in sorted(SHIPPED_ADAPTERS.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        for fname, expected in manifest["files"].items():
            actual = sha256_file(manifest_path.parent / fname)
            assert actual == expected, f"shipped {manifest_path.parent.name}/{fname} differs from its manifest"
            state[f"{manifest_path.parent.name}/{fname}"] = actual
    return state



def versions_on_disk(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "adapters").glob("*/v*"))


# --- a killed training worker ------------------------------------------------------------

# No replay: asking the bare base the general questions takes minutes on a busy machine, and the
# kill only needs a training step.
NO_REPLAY = {"replay_per_step": 0}


def test_killed_job_is_failed_and_nothing_is_listed(tiny_base, tmp_path, fact_file):
    shipped_before = shipped_state()
    data_dir = tmp_path / "data"
    jobs = JobManager(str(tiny_base.gguf_path), data_dir)
    # More epochs than the kill lets it reach, so the worker is surely mid-training when killed.
    job = jobs.start(fact_file, "facts", "tiny", {**NO_REPLAY, "epochs": 30, "early_stop": False})
    wait_for(lambda: any(e.get("phase") == "train" for e in job.events) or job.finished, 240, "a training step")
    assert not job.finished, f"the job ended before it could be killed: {job.state} {job.error}"
    os.kill(job.process.pid, signal.SIGKILL)
    wait_for(lambda: job.finished, 60, "the job manager to notice the kill")

    assert job.state == "failed"
    assert "killed (SIGKILL)" in job.error and "no partial adapter is listed" in job.error
    registry = Registry(tiny_base.sha256, data_dir, SHIPPED_ADAPTERS)
    assert "facts" not in [a.name for a in registry.list()]
    assert versions_on_disk(data_dir) == []
    assert not registry.staging_dir.exists() or list(registry.staging_dir.iterdir()) == []
    assert shipped_state() == shipped_before


@pytest.mark.slow  # the retry runs a whole report card on the tiny model: 1-3 minutes of CPU
def test_worker_killed_while_publishing_is_swept_at_start_and_a_retry_publishes(tiny_base, tmp_path, fact_file):
    """Killed after the adapter is staged (during its report card), before it is renamed into place."""
    shipped_before = shipped_state()
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "assistant", "train", "--progress-json", "--data", str(fact_file),
               "--name", "facts", "--preset", "tiny", "--data-dir", str(data_dir), "--base", str(tiny_base.gguf_path),
               "--set", "replay_per_step=0"]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    staged = threading.Event()

    def read_progress() -> None:
        for line in worker.stdout:
            event = json.loads(line)
            if event.get("phase") == "evaluate" and event.get("message", "").startswith("report card"):
                worker.send_signal(signal.SIGSTOP)  # freeze it where the staged adapter exists
                staged.set()
                return

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    try:
        wait_for(staged.is_set, 300, "the report card phase", poll=0.2)
        registry = Registry(tiny_base.sha256, data_dir, SHIPPED_ADAPTERS)
        staging = list(registry.staging_dir.iterdir())
        assert len(staging) == 1 and (staging[0] / "adapter.gguf").is_file(), "the adapter should be staged"
        assert registry.sweep_staging() == 0, "a build whose process is alive is left alone"
        worker.kill()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert "facts" not in [a.name for a in registry.list()] and versions_on_disk(data_dir) == []
    assert registry.staging_dir.is_dir() and any(registry.staging_dir.iterdir()), "the leftover is still there"
    # The next start (what `assistant serve` and every CLI command open) sweeps it.
    Assistant.open(str(tiny_base.gguf_path), data_dir=data_dir, shipped_dir=SHIPPED_ADAPTERS)
    assert list(registry.staging_dir.iterdir()) == []
    assert shipped_state() == shipped_before

    jobs = JobManager(str(tiny_base.gguf_path), data_dir)
    retry = jobs.start(fact_file, "facts", "tiny", NO_REPLAY)
    wait_for(lambda: retry.finished, 580, "the retry", poll=0.5)
    assert retry.state == "done", retry.error
    assert registry.get("facts").version == 1 and registry.get("facts").usable
    assert list(registry.staging_dir.iterdir()) == []
    assert shipped_state() == shipped_before


# --- adapters damaged after publishing ---------------------------------------------------

@pytest.fixture()
def damaged(tiny_base, tiny_adapters, tiny_llamacpp, tmp_path):
    """A copy of the tiny data directory (alpha, beta) and an Assistant over it."""
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_adapters, data_dir)
    registry = Registry(tiny_base.sha256, data_dir)
    return data_dir, registry, Assistant(tiny_base, tiny_llamacpp, registry)


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


DAMAGE = [("adapter_model.safetensors", flip_bytes), ("adapter.gguf", truncate),
          ("adapter_config.json", truncate), ("manifest.json", truncate)]
REASONS = {"adapter_model.safetensors": "adapter_model.safetensors is corrupt or changed (sha256 does not match",
           "adapter.gguf": "adapter.gguf is corrupt or changed (sha256 does not match",
           "adapter_config.json": "adapter_config.json is corrupt or changed",
           "manifest.json": "manifest.json is unreadable"}


@pytest.mark.parametrize(("victim", "fname", "damage"),
                         [(v, f, d) for v, other in (("alpha", "beta"), ("beta", "alpha")) for f, d in DAMAGE],
                         ids=[f"{v}-{f}" for v in ("alpha", "beta") for f, _ in DAMAGE])
def test_damaged_adapter_is_listed_broken_and_the_other_still_answers(damaged, victim, fname, damage):
    data_dir, registry, assistant = damaged
    other = "beta" if victim == "alpha" else "alpha"
    expected = assistant.ask("What is the capital of France?", other, SHORT)
    damage(data_dir / "adapters" / victim / "v1" / fname)

    listed = {a.name: a for a in registry.list()}
    assert set(listed) == {"alpha", "beta"}
    assert not listed[victim].usable and REASONS[fname] in listed[victim].problem
    assert listed[other].usable
    with pytest.raises(AdapterError, match=f"adapter '{victim}' cannot be used: "):
        assistant.ask("Hello?", victim, SHORT)
    assert assistant.ask("What is the capital of France?", other, SHORT) == expected
    assert assistant.ask("What is the capital of France?", None, SHORT) is not None


def test_a_gguf_damaged_before_its_manifest_was_written_fails_alone(damaged, tiny_base):
    """If the manifest matches a broken adapter.gguf (damaged before publishing), llama.cpp refuses it
    with a clear error, and the engine keeps serving the others."""
    data_dir, registry, assistant = damaged
    path = data_dir / "adapters" / "gamma" / "v1"
    shutil.copytree(data_dir / "adapters" / "alpha" / "v1", path)
    truncate(path / "adapter.gguf")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["name"] = "gamma"
    manifest["files"]["adapter.gguf"] = sha256_file(path / "adapter.gguf")
    (path / "manifest.json").write_text(json.dumps(manifest))

    assert registry.get("gamma").usable  # the header is fine: only loading it shows the damage
    with pytest.raises(EngineError, match="could not load adapter gamma@v1"):
        assistant.ask("Hello?", "gamma", SHORT)
    assert assistant.ask("What is the capital of France?", "beta", SHORT) is not None
    assert assistant.ask("What is the capital of France?", "alpha", SHORT) is not None
