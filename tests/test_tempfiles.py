"""Gradio's temporary files (no browser, no model): a private directory per app, what a crashed app
left is removed at start, downloads are linked into random directories, and an upload goes once a
training job has its own copy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ui import tempfiles


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    return tmp_path / f"field-assistant-gradio-{os.getuid()}"


def test_each_app_has_its_own_gradio_dir_and_a_dead_apps_dir_is_removed(temp_root, monkeypatch):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has exited
    for name in (f"app-{dead_pid}", "app-junk", f"app-{os.getppid()}"):
        (temp_root / name).mkdir(parents=True)
        (temp_root / name / "upload.csv").write_text("q,a\n")
    mine = tempfiles.use_private_dir()
    assert mine == temp_root / f"app-{os.getpid()}" and os.environ["GRADIO_TEMP_DIR"] == str(mine)
    assert sorted(p.name for p in temp_root.iterdir()) == sorted([f"app-{os.getppid()}", mine.name])  # live one kept
    assert tempfiles.gradio_dir() == mine.resolve()


def test_downloads_are_linked_into_a_fresh_random_directory(temp_root, tmp_path):
    gradio_dir = tempfiles.use_private_dir()
    export = tmp_path / "exports" / "x-v1-lora-gguf"
    export.mkdir(parents=True)
    (export / "x.gguf").write_bytes(b"weights")
    first, second = tempfiles.offer([export / "x.gguf"]), tempfiles.offer([export / "x.gguf"])
    for offered in (first, second):
        path = Path(offered[0])
        assert path.read_bytes() == b"weights" and path.parent.parent == gradio_dir
        assert re.fullmatch(r"download-[0-9a-f]{32}", path.parent.name)
    assert Path(first[0]).parent != Path(second[0]).parent


def test_an_upload_goes_once_its_training_job_has_a_copy(temp_root, tmp_path):
    from ui.train import start

    gradio_dir = tempfiles.use_private_dir()
    upload = gradio_dir / "3f1c" / "farm.jsonl"
    upload.parent.mkdir()
    upload.write_text('{"question": "q?", "answer": "a."}\n')
    outside = tmp_path / "mine.jsonl"
    outside.write_text(upload.read_text())
    copies = []

    class Jobs:
        def start(self, path, name, preset, overrides, description="", answer_policy=None):
            copies.append(Path(path).read_text())
            return SimpleNamespace(name=name)

    args = ("orchard", "fast", "", 8, 1e-3, 3, 4, False)
    assert start(Jobs(), tmp_path / "uploads", str(upload), *args) == "Started training **orchard**."
    assert copies == [outside.read_text()] and not upload.exists() and not upload.parent.exists()
    assert start(Jobs(), tmp_path / "uploads", str(upload), *args) == \
        "❌ That upload is gone (each upload trains one adapter); upload the file again."
    assert start(Jobs(), tmp_path / "uploads", str(outside), *args) == "Started training **orchard**."
    assert outside.exists()  # only Gradio's own temporary files are ever deleted
    assert not tempfiles.discard_upload(gradio_dir) and gradio_dir.is_dir()
