"""Which version of each adapter serves: recorded in `<data-dir>/serving.json`, so a restart serves
the same one; promote and roll back without retraining.

    {"serving":   {"agriculture": 2},                       # name -> the version that serves
     "decisions": {"agriculture": {"2": {...gate...}}},      # the gate's decision on each candidate
     "history":   [{"name", "version", "from", "action", "by", "at"}, ...]}  # the last HISTORY_KEPT changes

A name with no entry serves its newest usable version that is not a candidate (as before this
file existed: shipped adapters, data directories from older releases). A candidate is a version
published to be gated (assistant.training.gate); it is kept, listed, and serves only once promoted.
A recorded version that has become unusable (a corrupt file) gives way to that default.

Every change is one atomic write of the whole file (fsutil.write_json_atomic) under the registry's
publish lock: a process killed while recording leaves the old state or the new one, never half,
and a training worker publishing meanwhile waits its turn.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from assistant.adapter_names import AdapterError, UnknownAdapter, validate_name
from assistant.fsutil import write_json_atomic

SERVING_FILE = "serving.json"
HISTORY_KEPT = 200


def read_state(data_dir: Path) -> dict:
    """The recorded state; an absent or unreadable file is the default (newest non-candidate serves)."""
    try:
        data = json.loads((Path(data_dir) / SERVING_FILE).read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    serving = data.get("serving") if isinstance(data.get("serving"), dict) else {}
    decisions = data.get("decisions") if isinstance(data.get("decisions"), dict) else {}
    history = data.get("history") if isinstance(data.get("history"), list) else []
    return {"serving": {k: v for k, v in serving.items() if isinstance(v, int) and not isinstance(v, bool)},
            "decisions": decisions, "history": history}


def pick_serving(versions: list, pinned: int | None):
    """Of one name's versions (oldest first), the one that serves; when none can, the newest that is
    not a candidate (listed unusable, with its reason: a candidate never serves unpromoted)."""
    usable = [a for a in versions if a.usable]
    chosen = next((a for a in usable if a.version == pinned), None)
    if chosen is None:
        chosen = max((a for a in usable if not a.candidate), key=lambda a: a.version, default=None)
    plain = [a for a in versions if not a.candidate]
    return chosen or max(plain or versions, key=lambda a: a.version)


def serving_version(registry, name: str) -> int | None:
    """The version of `name` that serves, or None when none of its versions can."""
    adapter = next((a for a in registry.list() if a.name == name), None)
    return adapter.version if adapter is not None and adapter.usable else None


# changing it: the caller holds the publish lock (lock(registry)) ---------------------------------

def lock(registry):
    from filelock import FileLock

    registry.local_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(registry.local_dir / ".publish.lock"))


def record_serving(data_dir: Path, name: str, version: int, action: str, by: str = "",
                   decision: dict | None = None) -> None:
    """Make `name` v`version` serve (and record a gate decision with it), in one atomic write."""
    state = read_state(data_dir)
    previous = state["serving"].get(name)
    if action != "refused":
        state["serving"][name] = int(version)
    if decision is not None:
        state["decisions"].setdefault(name, {})[str(version)] = decision
    state["history"] = (state["history"] + [{"name": name, "version": int(version), "from": previous, "action": action,
                                             "by": by, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
                        )[-HISTORY_KEPT:]
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(data_dir) / SERVING_FILE, state)


def forget(data_dir: Path, name: str) -> None:
    """Drop what is recorded of a deleted name."""
    state = read_state(data_dir)
    if name in state["serving"] or name in state["decisions"]:
        state["serving"].pop(name, None)
        state["decisions"].pop(name, None)
        write_json_atomic(Path(data_dir) / SERVING_FILE, state)


# promote and roll back --------------------------------------------------------------------------

def make_serving(registry, name: str, version, action: str = "serve", by: str = ""):
    """Make an existing version serve. `action`: "promote" (a newer version than the serving one),
    "rollback" (an older one) or "serve" (either). Returns the Adapter now serving; AdapterError
    (or UnknownAdapter) with a message for the user when it cannot, and then nothing changes."""
    validate_name(name)
    version = parse_version(version)
    with lock(registry):
        target = registry.get_version(name, version)
        if not target.usable:
            raise AdapterError(f"{name} v{version} cannot serve: {target.problem}")
        current = serving_version(registry, name)
        if current == version:
            raise AdapterError(f"{name} v{version} already serves; nothing changed")
        if action == "promote" and current is not None and version < current:
            raise AdapterError(f"{name} v{version} is older than the serving v{current}: roll back to it instead")
        if action == "rollback" and current is not None and version > current:
            raise AdapterError(f"{name} v{version} is newer than the serving v{current}: promote it instead")
        if action == "serve":
            action = "promote" if current is None or version > current else "rollback"
        record_serving(registry.data_dir, name, version, action, by)
    return registry.get(name)


def record_decision(registry, name: str, version: int, decision: dict, promote: bool, by: str = "gate"):
    """Record the gate's decision on a candidate and, when it passed, make it serve: one write."""
    with lock(registry):
        record_serving(registry.data_dir, name, version, "promote" if promote else "refused", by, decision)


def decisions(registry, name: str) -> dict[int, dict]:
    """The gate's decision on each gated version of a name."""
    found = read_state(registry.data_dir)["decisions"].get(name) or {}
    return {int(v): d for v, d in found.items() if str(v).isdigit() and isinstance(d, dict)}


def parse_version(value) -> int:
    """2, "2" or "v2" -> 2; anything else is an AdapterError saying what a version looks like."""
    text = str(value).strip().lower().removeprefix("v")
    if isinstance(value, bool) or not text.isdigit() or not text.isascii() or len(text) > 9 or int(text) < 1:
        shown = str(value)[:40]
        raise AdapterError(f"invalid version {shown!r}: give a version number such as 2 or v2")
    return int(text)


def describe_versions(registry, name: str) -> list[dict]:
    """Every version of a name, oldest first, as shown by the CLI and the Train tab: describe() plus
    whether it serves, the gate's decision on it, and what its dataset added (lineage.json)."""
    versions = registry.versions(name)
    if not versions:
        raise UnknownAdapter(name, registry.usable_names())
    now, gated = serving_version(registry, name), decisions(registry, name)
    rows = []
    for adapter in versions:
        lineage = adapter.lineage
        status = "serving" if adapter.version == now else (
            "unusable" if not adapter.usable else "candidate" if adapter.candidate and not (
                gated.get(adapter.version) or {}).get("passed") else "kept")
        rows.append({**adapter.describe(), "serving": adapter.version == now, "status": status,
                     "decision": gated.get(adapter.version),
                     "lineage": {"trained_from": lineage.get("trained_from"), "trained_by": lineage.get("trained_by"),
                                 "added": len(lineage.get("added") or []), "replaced": len(lineage.get("replaced") or []),
                                 "answered_by": sorted({p.get("answered_by") or "" for p in
                                                        (lineage.get("added") or []) + (lineage.get("replaced") or [])}
                                                       - {""})} if lineage else None})
    return rows
