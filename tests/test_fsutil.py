"""fsutil: atomic writes leave the old file or the new one, staging sweeps spare live builders."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from assistant import fsutil


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "manifest.json"
    fsutil.write_json_atomic(path, {"b": 1, "a": 2})
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}'
    with pytest.raises(RuntimeError), fsutil.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text().startswith("{") and os.listdir(tmp_path) == ["manifest.json"]


def test_atomic_writes_keep_the_usual_mode_and_secrets_can_be_private(tmp_path):
    old = os.umask(0o022)
    try:
        shared = fsutil.write_text_atomic(tmp_path / "export.json", "{}")
        secret = fsutil.write_text_atomic(tmp_path / "users.json", "{}", mode=0o600)
    finally:
        os.umask(old)
    assert shared.stat().st_mode & 0o777 == 0o644 and secret.stat().st_mode & 0o777 == 0o600


def test_staging_names_carry_the_pid_and_a_sweep_spares_live_builders(tmp_path):
    live = fsutil.new_staging(tmp_path, ".alpha-v1-gguf-q8_0", ".staging")
    assert fsutil.staging_owner(live.name) == os.getpid() and f"-{os.getpid()}-" in live.name
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".beta-v2-hf-{int(gone.stdout)}-abc123.staging"
    (dead / "sub").mkdir(parents=True)
    finished = tmp_path / "alpha-v1-hf"
    finished.mkdir()
    assert fsutil.sweep_staging(tmp_path, ".*.staging", keep_unowned=True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, finished.name])


def test_move_into_place_replaces_an_older_directory_whole(tmp_path):
    target = tmp_path / "x-v1-hf"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = fsutil.new_staging(tmp_path, ".x-v1-hf", ".staging")
    (staging / "new.txt").write_text("new")
    fsutil.move_into_place(staging, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"] and list(tmp_path.iterdir()) == [target]


def test_cached_sha256_is_recomputed_when_the_file_changes(tmp_path):
    path = tmp_path / "base.gguf"
    path.write_bytes(b"one")
    first = fsutil.sha256_file_cached(path)
    assert first == fsutil.sha256_file(path) and (tmp_path / "base.gguf.sha256").is_file()
    path.write_bytes(b"two!")
    assert fsutil.sha256_file_cached(path) == fsutil.sha256_file(path) != first
