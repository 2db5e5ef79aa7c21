"""Which of the trainers' queue items a version of an adapter holds, and the queue kept in step
with the version that serves.

A version trained by "next version" records in `lineage.json` the queue items its new pairs came
from and the version it was trained from; that version may have its own, and so on back to a
version trained from a file. So what a version holds is the union along that chain, and after a
rollback from v3 to v1 the items v2 and v3 added are no longer held: they go back to "answered"
(their askers no longer see them answered, and v4 trains them again).

    sync_queue(store, registry, adapter)   # after every change of the serving version
"""

from __future__ import annotations

from assistant.registry import AdapterError


def items_held(registry, adapter) -> dict[int, int]:
    """{queue item id: the version that trained it}, along the chain of versions `adapter` was
    trained from (the newest version wins for an item trained twice: its answer is the one held).
    A version of the chain that is gone ends the chain there."""
    held: dict[int, int] = {}
    seen: set[int] = set()
    while adapter is not None and adapter.version not in seen:
        seen.add(adapter.version)
        lineage = adapter.lineage or {}
        for pair in (lineage.get("added") or []) + (lineage.get("replaced") or []):
            for item_id in (pair.get("item_ids") or []) if isinstance(pair, dict) else []:
                if isinstance(item_id, int) and not isinstance(item_id, bool):
                    held.setdefault(item_id, adapter.version)
        adapter = _trained_from(registry, adapter, lineage)
    return held


def sync_queue(store, registry, adapter) -> tuple[int, int]:
    """Make the queue say what `adapter` (the version that serves now) holds; (marked trained, back
    to answered). Nothing to do without a queue."""
    if store is None:
        return 0, 0
    from assistant import questions

    return questions.sync_trained(store, adapter.name, items_held(registry, adapter))


def _trained_from(registry, adapter, lineage: dict):
    source = lineage.get("trained_from") if isinstance(lineage.get("trained_from"), dict) else {}
    version = source.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or source.get("name") not in (None, adapter.name):
        return None
    try:
        return registry.get_version(adapter.name, version)
    except AdapterError:
        return None
