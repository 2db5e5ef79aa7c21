"""The serving version of each adapter: recorded, kept across restarts, promoted and rolled back,
candidates kept but not served, and a promotion killed half-way leaves the old or the new one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant import serving
from assistant.registry import AdapterError, Registry, UnknownAdapter


def _add_version(src: Path, data: Path, name: str, version: int, **manifest_changes) -> Path:
    dst = data / "adapters" / name / f"v{version}"
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**manifest, "name": name, "version": version, **manifest_changes}))
    return dst


@pytest.fixture()
def crop(tmp_path, tiny_registry):
    """A data directory whose adapter 'crop' has v1, v2, v3 (copies of a tiny random adapter)."""
    src = tiny_registry.get("alpha").path
    for version in (1, 2, 3):
        _add_version(src, tmp_path, "crop", version)
    return Registry(tiny_registry.base_sha256, tmp_path), src


def test_newest_serves_by_default_and_a_rollback_survives_a_restart(crop):
    registry, _ = crop
    assert registry.get("crop").version == 3 and not (registry.data_dir / serving.SERVING_FILE).exists()
    assert registry.rollback("crop", 1, by="amina").version == 1
    restarted = Registry(registry.base_sha256, registry.data_dir)  # the app started again
    assert restarted.get("crop").version == 1
    assert [a.version for a in restarted.list() if a.name == "crop"] == [1] and restarted.usable_names() == ["crop"]
    assert restarted.promote("crop", "v3").version == 3 and Registry(registry.base_sha256, registry.data_dir).get("crop").version == 3
    history = serving.read_state(registry.data_dir)["history"]
    assert [(h["action"], h["from"], h["version"], h["by"]) for h in history] == [
        ("rollback", None, 1, "amina"), ("promote", 1, 3, "")]


@pytest.mark.parametrize("call, version, message", [
    ("promote", 3, "crop v3 already serves; nothing changed"),
    ("rollback", 3, "crop v3 already serves"),
    ("promote", 9, "'crop' has no version 9; it has v1, v2, v3"),
    ("rollback", "two", "invalid version 'two': give a version number such as 2 or v2"),
    ("rollback", 0, "invalid version '0'"),
    ("rollback", True, "invalid version"),
])
def test_refusals_say_why_and_change_nothing(crop, call, version, message):
    registry, _ = crop
    with pytest.raises(AdapterError, match=message.replace("(", r"\(")):
        getattr(registry, call)("crop", version)
    assert registry.get("crop").version == 3 and not (registry.data_dir / serving.SERVING_FILE).exists()


def test_promote_and_rollback_go_their_own_way(crop):
    registry, _ = crop
    registry.rollback("crop", 1)
    with pytest.raises(AdapterError, match="crop v2 is newer than the serving v1: promote it instead"):
        registry.rollback("crop", 2)
    registry.promote("crop", 3)
    with pytest.raises(AdapterError, match="crop v2 is older than the serving v3: roll back to it instead"):
        registry.promote("crop", 2)
    with pytest.raises(UnknownAdapter, match="unknown adapter 'wheat'"):
        registry.promote("wheat", 1)
    with pytest.raises(AdapterError, match="invalid adapter name"):
        registry.promote("../crop", 1)


def test_a_candidate_is_kept_but_serves_only_once_promoted(crop):
    registry, src = crop
    registry.rollback("crop", 2)
    _add_version(src, registry.data_dir, "crop", 4, candidate=True)
    assert registry.get("crop").version == 2, "the recorded version still serves"
    (registry.data_dir / serving.SERVING_FILE).unlink()
    assert registry.get("crop").version == 3, "without a record: the newest that is not a candidate"
    assert registry.get_version("crop", 4).candidate and [a.version for a in registry.versions("crop")] == [1, 2, 3, 4]
    assert registry.promote("crop", 4).version == 4
    (registry.data_dir / serving.SERVING_FILE).unlink()
    for version in (1, 2, 3):  # nothing else can serve: the name is unusable, the candidate still waits
        (registry.get_version("crop", version).path / "adapter.gguf").write_bytes(b"GGUF damaged")
    listed = next(a for a in registry.list() if a.name == "crop")
    assert (listed.version, listed.usable) == (3, False)
    assert registry.promote("crop", 4).version == 4


def test_a_plain_new_version_serves_at_once_and_delete_forgets(crop):
    registry, src = crop
    registry.rollback("crop", 1)
    staging = registry.new_staging()
    for path in src.iterdir():
        if path.name != "manifest.json":
            shutil.copy(path, staging / path.name)
    published = registry.publish(staging, "crop", {"base_sha256": registry.base_sha256, "prompt_format": "qa"})
    assert published.version == 4 and registry.get("crop").version == 4, "a new upload trained serves, as always"
    registry.delete("crop")
    assert "crop" not in serving.read_state(registry.data_dir)["serving"]


def test_a_recorded_version_that_breaks_gives_way(crop):
    registry, _ = crop
    registry.rollback("crop", 1)
    (registry.get_version("crop", 1).path / "adapter.gguf").write_bytes(b"GGUF damaged")
    assert registry.get("crop").version == 3
    with pytest.raises(AdapterError, match="crop v1 cannot serve: adapter.gguf is corrupt"):
        registry.rollback("crop", 1)


def test_a_failed_write_leaves_the_old_version_serving(crop, monkeypatch):
    registry, _ = crop
    registry.rollback("crop", 2)
    import assistant.fsutil as fsutil

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", full_disk)
    with pytest.raises(OSError):
        registry.promote("crop", 3)
    monkeypatch.undo()
    assert registry.get("crop").version == 2
    assert [p.name for p in registry.data_dir.iterdir() if p.name.endswith(".tmp")] == []


FLIPPER = """
import sys
sys.path.insert(0, {root!r})
from assistant.registry import Registry
from assistant.serving import make_serving
registry = Registry({sha!r}, {data!r})
while True:
    make_serving(registry, "crop", 1 if registry.get("crop").version == 3 else 3)
    print("ready", flush=True)
"""


def test_killed_while_recording_leaves_old_or_new_never_half(crop):
    registry, _ = crop
    root = str(Path(__file__).resolve().parents[1])
    seen = set()
    for delay in (0.05, 0.11, 0.17, 0.23, 0.31):
        child = subprocess.Popen([sys.executable, "-c", FLIPPER.format(root=root, sha=registry.base_sha256,
                                                                       data=str(registry.data_dir))],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        state = json.loads((registry.data_dir / serving.SERVING_FILE).read_text())  # whole JSON, always
        version = Registry(registry.base_sha256, registry.data_dir).get("crop").version
        assert state["serving"]["crop"] == version and version in (1, 3)
        seen.add(version)
    assert seen, "a killed writer's temporary file is never read: the state is the last whole write"


def test_the_app_indexes_a_version_that_began_to_serve_before_checking_an_answer(crop, tiny_base, tiny_llamacpp):
    """Promoted by the job worker or rolled back from the CLI: the app's next answer is checked
    against the serving version's own pairs, so it indexes that version first."""
    from assistant.engines import GenerationSettings
    from assistant.service import Assistant

    registry, _ = crop
    indexed, synced = {"crop@v3"}, []

    class Knowledge:
        def indexed(self):
            return {key: 1 for key in indexed}

        def sync(self, reg):
            synced.append(reg.get("crop").key)
            indexed.add(reg.get("crop").key)

        def search(self, *args, **kwargs):
            return []

    assistant = Assistant(tiny_base, tiny_llamacpp, registry, knowledge=Knowledge())
    ask = [{"role": "user", "content": "Hello?"}]
    assistant.answer(ask, "crop", GenerationSettings(max_tokens=2)).read()
    assert synced == [], "the serving version is indexed already"
    Registry(registry.base_sha256, registry.data_dir).rollback("crop", 1)  # another process
    answer = assistant.answer(ask, "crop", GenerationSettings(max_tokens=2))
    answer.read()
    assert synced == ["crop@v1"] and answer.version == 1
