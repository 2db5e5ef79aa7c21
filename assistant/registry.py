"""Adapters on disk: listing, validation, versions and atomic publishing.

An adapter is a directory:
    adapter_config.json + adapter_model.safetensors   peft LoRA (never pickles)
    adapter.gguf                                      the same LoRA for llama.cpp
    manifest.json                                     written last: name, version, base sha256,
                                                      prompt format, training config, dataset, report
Shipped adapters live in `adapters/<name>/` (read-only); published ones in
`<data-dir>/adapters/<name>/v<N>/`. One version of each name serves (assistant.serving: recorded in
`<data-dir>/serving.json`, by default the newest usable one that is not a gated candidate). A directory is
visible only once renamed into place, and the rename happens after the manifest is written, so a
crash never leaves a half-written adapter listed. Anything wrong with one adapter (another base, a
pickle, a corrupt file, a bad name) makes that one unusable, with its reason, and never the others.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant import serving
from assistant.adapter_files import MANIFEST, NAME_RE, inspect_adapter
from assistant.adapter_names import AdapterError, UnknownAdapter, validate_name
from assistant.fsutil import new_staging, sha256_file, sweep_staging, write_json_atomic

POLICY_FILE = "answer_policies.json"  # in the data dir: answer policies changed after publishing, by name
LINEAGE = "lineage.json"  # beside a version's adapter: what its dataset added to the version before, by whom


@dataclass
class Adapter:
    """One adapter version as found on disk."""

    name: str
    version: int
    path: Path
    source: str  # "shipped" or "local"
    manifest: dict = field(default_factory=dict)
    problem: str | None = None  # why it cannot be used; None when usable

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def key(self) -> str:
        """Unique per version, so a new version loads beside the old one that still serves."""
        return f"{self.name}@v{self.version}"

    @property
    def gguf_path(self) -> Path:
        return self.path / "adapter.gguf"

    @property
    def prompt_format(self) -> str:
        return self.manifest.get("prompt_format", "qa")

    @property
    def report_card(self) -> dict | None:
        return self.manifest.get("report_card")

    @property
    def candidate(self) -> bool:
        """Published to be gated (assistant.training.gate): it serves only once promoted."""
        return bool(self.manifest.get("candidate"))

    @property
    def lineage(self) -> dict:
        """What this version's dataset changed against the version it was trained from, if recorded."""
        try:
            data = json.loads((self.path / LINEAGE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def answer_policy(self) -> str:
        """"checked" (answers only what its Q&A covers) or "open" (see assistant.trust)."""
        return "checked" if self.manifest.get("answer_policy") == "checked" else "open"

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "source": self.source, "usable": self.usable,
                "problem": self.problem, "path": str(self.path), "prompt_format": self.prompt_format,
                "description": self.manifest.get("description", ""), "created": self.manifest.get("created"),
                "dataset": self.manifest.get("dataset", {}), "report_card": self.report_card,
                "answer_policy": self.answer_policy, "candidate": self.candidate}


class Registry:
    """Owns the adapter directories: callers ask it for adapters by name."""

    def __init__(self, base_sha256: str, data_dir: Path, shipped_dir: Path | None = None):
        self.base_sha256 = base_sha256
        self.data_dir = Path(data_dir)
        self.shipped_dir = Path(shipped_dir) if shipped_dir else None
        self.local_dir = self.data_dir / "adapters"
        self.staging_dir = self.data_dir / "staging"
        self._cache: dict[Path, tuple[tuple, Adapter]] = {}

    # listing --------------------------------------------------------------------------------
    def all_versions(self) -> list[Adapter]:
        found = []
        if self.shipped_dir and self.shipped_dir.is_dir():
            for path in sorted(p for p in self.shipped_dir.iterdir() if p.is_dir() and not _hidden(p)):
                found.append(self._load(path, "shipped"))
        if self.local_dir.is_dir():
            for name_dir in sorted(p for p in self.local_dir.iterdir() if p.is_dir() and not _hidden(p)):
                for path in sorted(p for p in name_dir.iterdir() if p.is_dir() and re.fullmatch(r"v\d+", p.name)):
                    found.append(self._load(path, "local"))
        return found

    def versions(self, name: str) -> list[Adapter]:
        """Every version of one name, oldest first, with the name's current answer policy."""
        return self._by_name().get(name, [])

    def list(self) -> list[Adapter]:
        """One entry per name: the version that serves (assistant.serving), else its newest (unusable) one."""
        pinned = serving.read_state(self.data_dir)["serving"]
        return [serving.pick_serving(versions, pinned.get(name)) for name, versions in sorted(self._by_name().items())]

    def _by_name(self) -> dict[str, list[Adapter]]:
        changed = self.changed_policies()
        grouped: dict[str, list[Adapter]] = {}
        for adapter in self.all_versions():
            if adapter.name in changed:  # a trainer's later choice wins over the one it was published with
                adapter = replace(adapter, manifest={**adapter.manifest, "answer_policy": changed[adapter.name]})
            grouped.setdefault(adapter.name, []).append(adapter)
        return {name: sorted(found, key=lambda a: a.version) for name, found in grouped.items()}

    def usable_names(self) -> list[str]:
        return [a.name for a in self.list() if a.usable]

    def get(self, name: str) -> Adapter:
        """The version of `name` that serves."""
        for adapter in self.list():
            if adapter.name == name:
                if not adapter.usable:
                    raise AdapterError(f"adapter '{name}' cannot be used: {adapter.problem}")
                return adapter
        raise UnknownAdapter(name, self.usable_names())

    def get_version(self, name: str, version: int) -> Adapter:
        """One version of a name, serving or not; UnknownAdapter / AdapterError when there is none."""
        versions = self.versions(name)
        if not versions:
            raise UnknownAdapter(name, self.usable_names())
        for adapter in versions:
            if adapter.version == version:
                return adapter
        have = ", ".join(f"v{a.version}" for a in versions)
        raise AdapterError(f"'{name}' has no version {version}; it has {have}")

    def _load(self, path: Path, source: str) -> Adapter:
        stamp = _dir_stamp(path)
        cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        manifest, problem = inspect_adapter(path, self.base_sha256)
        name = path.name if source == "shipped" else path.parent.name
        if not NAME_RE.fullmatch(name):
            problem = problem or f"invalid adapter name {name!r}"
        elif manifest.get("name") not in (None, name):
            problem = problem or f"manifest names '{manifest.get('name')}' but the directory is '{name}'"
        version = manifest.get("version") if isinstance(manifest.get("version"), int) else 0
        if source == "local":
            version = int(path.name[1:])
        adapter = Adapter(name=name, version=version, path=path, source=source, manifest=manifest, problem=problem)
        self._cache[path] = (stamp, adapter)
        return adapter

    # the serving version (assistant.serving) --------------------------------------------------
    def promote(self, name: str, version, by: str = "") -> Adapter:
        """Make a newer version (a candidate, say) serve instead of the serving one."""
        return serving.make_serving(self, name, version, "promote", by)

    def rollback(self, name: str, version, by: str = "") -> Adapter:
        """Make an earlier version serve again, without retraining."""
        return serving.make_serving(self, name, version, "rollback", by)

    # answer policies --------------------------------------------------------------------------
    def changed_policies(self) -> dict[str, str]:
        """Policies set after publishing. They live beside the adapters, not in their manifests:
        shipped adapters are read-only, and a manifest is part of what a version is."""
        try:
            data = json.loads((self.data_dir / POLICY_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if v in ("checked", "open")} if isinstance(data, dict) else {}

    def set_answer_policy(self, name: str, policy: str) -> Adapter:
        """Change how an adapter answers, without retraining: every version of the name follows."""
        if policy not in ("checked", "open"):
            raise AdapterError(f"unknown answer policy {str(policy)[:40]!r} (choose checked or open)")
        adapter = self.get(name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.data_dir / POLICY_FILE, {**self.changed_policies(), adapter.name: policy})
        return self.get(name)

    # publishing -----------------------------------------------------------------------------
    def new_staging(self) -> Path:
        """A fresh private directory to build an adapter in; publish() moves it into place."""
        # The builder's pid is in the name, so a sweep by another process leaves a live build alone.
        return new_staging(self.staging_dir, "adapter")

    def sweep_staging(self) -> int:
        """Remove leftovers of builds whose process is gone (crashed, killed); returns how many.

        Every `Assistant.open` sweeps (the app at start, each CLI command, each training worker),
        and any of them may run beside a training job that is still building its adapter here.
        """
        return sweep_staging(self.staging_dir)  # the directory holds only staging: unowned entries go too

    def publish(self, staging: Path, name: str, manifest: dict) -> Adapter:
        """Stamp the staged files into a manifest, validate, and move them in as the next version."""
        from filelock import FileLock

        validate_name(name)
        staging = Path(staging)
        self.local_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.local_dir / ".publish.lock")):
            version = 1 + max((a.version for a in self.all_versions() if a.name == name), default=0)
            files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file() and p.name != MANIFEST}
            full = {**manifest, "name": name, "version": version, "base_sha256": manifest.get("base_sha256", self.base_sha256),
                    "created": manifest.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": files}
            write_json_atomic(staging / MANIFEST, full)
            _, problem = inspect_adapter(staging, self.base_sha256)
            if problem:
                raise AdapterError(f"refusing to publish '{name}': {problem}")
            target = self.local_dir / name / f"v{version}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)  # not fsutil.move_into_place: an existing version is never replaced
            if not full.get("candidate"):  # a plain new version serves at once, as it always has
                serving.record_serving(self.data_dir, name, version, "published", by=str(manifest.get("trained_by") or ""))
        return self._load(target, "local")

    def delete(self, name: str) -> list[Adapter]:
        """Remove every version of a trained adapter; returns what was removed.

        The adapter's directory is renamed into staging first (one atomic step: it is listed whole
        or not at all), then removed; a crash in between leaves only staging, swept at the next start.
        Shipped adapters are part of the install and are never deleted.
        """
        from filelock import FileLock

        validate_name(name)
        versions = [a for a in self.all_versions() if a.name == name]
        if not versions:
            raise UnknownAdapter(name, self.usable_names())
        if all(a.source == "shipped" for a in versions):
            raise AdapterError(f"'{name}' is a shipped adapter; it is part of the install and cannot be deleted")
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.local_dir / ".publish.lock")):
            doomed = self.staging_dir / f"deleted-{name}-{os.getpid()}-{time.time_ns()}"
            os.replace(self.local_dir / name, doomed)
            serving.forget(self.data_dir, name)  # a name trained again later starts from its newest version
        shutil.rmtree(doomed, ignore_errors=True)
        return [a for a in versions if a.source == "local"]


def publish_peft_model(registry: Registry, peft_model, name: str, manifest: dict, extra_files: dict | None = None,
                       before_publish=None) -> Adapter:
    """Save a peft model's LoRA, convert it for llama.cpp, and publish both as one adapter version.

    `extra_files` maps a file name to bytes to store beside the weights (the training data, say).
    `before_publish(staging_dir) -> report card` runs on the complete staged adapter (to evaluate
    it) before it becomes visible; its result goes into the manifest.
    """
    from assistant.gguf.lora import write_lora_gguf

    validate_name(name)
    staging = registry.new_staging()
    try:
        peft_model.save_pretrained(str(staging), safe_serialization=True)
        (staging / "README.md").unlink(missing_ok=True)  # peft's model-card stub says nothing true
        write_lora_gguf(staging, staging / "adapter.gguf")
        for fname, data in (extra_files or {}).items():
            (staging / fname).write_bytes(data)
        if before_publish is not None:
            manifest = {**manifest, "report_card": before_publish(staging)}
        return registry.publish(staging, name, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when publish moved it


def _hidden(path: Path) -> bool:
    """Dot-entries (.ipynb_checkpoints, a Finder's .DS_Store, our .publish.lock) are never adapters."""
    return path.name.startswith(".")


def _dir_stamp(path: Path) -> tuple:
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()))
    except OSError:
        return ()
