"""Adapter registry: listing, versions, atomic publishing, and every way an adapter can be unusable."""

from __future__ import annotations

import json
import shutil

import pytest
from tiny import publish_tiny_adapter

from assistant.registry import AdapterError, Registry, UnknownAdapter, validate_name


def _copy_adapter(src, dst_root, name, version=1):
    dst = dst_root / "adapters" / name / f"v{version}"
    shutil.copytree(src, dst)
    return dst


def test_lists_published_adapters_with_versions(tiny_registry):
    names = {a.name: a for a in tiny_registry.list()}
    assert set(names) == {"alpha", "beta"}
    assert all(a.usable and a.version == 1 and a.source == "local" for a in names.values())
    manifest = names["alpha"].manifest
    assert set(manifest["files"]) == {"adapter.gguf", "adapter_config.json", "adapter_model.safetensors"}


def test_unknown_adapter_names_the_available_ones(tiny_registry):
    with pytest.raises(UnknownAdapter) as err:
        tiny_registry.get("gamma")
    assert "alpha" in str(err.value) and "beta" in str(err.value)


@pytest.mark.parametrize("bad", ["", "Upper", "../evil", "a/b", "x" * 49, "-dash", "nul\x00", "café", "ａbc"])
def test_bad_names_are_refused(bad):
    with pytest.raises(AdapterError, match="invalid adapter name"):
        validate_name(bad)


def test_new_version_appears_without_restart_and_old_serves_meanwhile(tmp_path, tiny_base):
    registry = Registry(tiny_base.sha256, tmp_path)
    first = publish_tiny_adapter(registry, tiny_base, "crop", seed=3)
    running = Registry(tiny_base.sha256, tmp_path)  # e.g. the web app's registry, created earlier
    assert running.get("crop").version == 1
    staging = registry.new_staging()  # a second training run is in progress: nothing new is listed
    (staging / "adapter_model.safetensors").write_bytes(b"half written")
    assert running.get("crop").version == 1 and [a.name for a in running.list()] == ["crop"]
    second = publish_tiny_adapter(registry, tiny_base, "crop", seed=4)
    assert second.version == 2 and running.get("crop").version == 2
    assert first.path.is_dir(), "old versions are kept"
    assert registry.sweep_staging() == 0, "a build whose process is alive is left alone"
    staging.rename(staging.with_name("adapter-999999999-crashed"))  # its builder is gone (pids stay < 2**22)
    assert registry.sweep_staging() == 1 and not any(registry.staging_dir.iterdir())


def _broken(tmp_path, tiny_registry, tiny_base, name, damage):
    data = tmp_path / "data"
    path = _copy_adapter(tiny_registry.get("alpha").path, data, name)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["name"] = name
    (path / "manifest.json").write_text(json.dumps(manifest))
    damage(path)
    _copy_adapter(tiny_registry.get("beta").path, data, "beta")
    return Registry(tiny_base.sha256, data)


def _set_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _rewrite(path, fname, text):
    """Change a file and its recorded checksum, so the content check itself is what fails."""
    (path / fname).write_text(text)
    _set_manifest(path, files={})


CASES = {
    "wrong base": (lambda p: _set_manifest(p, base_sha256="0" * 64), "trained for another base"),
    "pickle": (lambda p: (p / "adapter_model.bin").write_bytes(b"\x80\x04pickle"), "pickle"),
    "corrupt weights": (lambda p: (p / "adapter_model.safetensors").write_bytes(b"garbage"), "corrupt"),
    "truncated gguf": (lambda p: (p / "adapter.gguf").write_bytes(b"GG"), "adapter.gguf is corrupt"),
    "missing gguf": (lambda p: (p / "adapter.gguf").unlink(), "missing adapter.gguf"),
    "bad manifest": (lambda p: (p / "manifest.json").write_text("{not json"), "manifest.json is unreadable"),
    "no manifest": (lambda p: (p / "manifest.json").unlink(), "no manifest.json"),
    "not lora": (lambda p: _rewrite(p, "adapter_config.json", '{"peft_type": "IA3"}'), "not a LoRA adapter"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_adapter_is_listed_with_its_reason_and_others_serve(tmp_path, tiny_registry, tiny_base, case):
    damage, reason = CASES[case]
    registry = _broken(tmp_path, tiny_registry, tiny_base, "broken", damage)
    listed = {a.name: a for a in registry.list()}
    assert not listed["broken"].usable and reason in listed["broken"].problem
    assert listed["beta"].usable
    with pytest.raises(AdapterError, match=reason):
        registry.get("broken")
    assert registry.get("beta").usable


def test_bad_directory_name_is_listed_unusable(tmp_path, tiny_registry, tiny_base):
    data = tmp_path / "data"
    _copy_adapter(tiny_registry.get("alpha").path, data, "Bad Name")
    listed = Registry(tiny_base.sha256, data).list()
    assert [(a.name, a.usable) for a in listed] == [("Bad Name", False)]
    assert "invalid adapter name" in listed[0].problem


def test_shipped_adapters_are_read_only_sources(tmp_path, tiny_registry, tiny_base):
    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_registry.get("alpha").path, shipped / "alpha")
    registry = Registry(tiny_base.sha256, tmp_path / "data", shipped_dir=shipped)
    assert registry.get("alpha").source == "shipped"
    newer = publish_tiny_adapter(registry, tiny_base, "alpha", seed=9)
    assert newer.version == 2 and registry.get("alpha").source == "local"
    assert (shipped / "alpha" / "manifest.json").is_file()


def test_publish_refuses_an_invalid_build_and_lists_nothing(tmp_path, tiny_base):
    registry = Registry(tiny_base.sha256, tmp_path)
    staging = registry.new_staging()
    (staging / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(AdapterError, match="refusing to publish"):
        registry.publish(staging, "half", {"prompt_format": "qa"})
    assert registry.list() == []
