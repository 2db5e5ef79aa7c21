"""The queue follows the serving version: what it holds (along its chain of versions) shows as
answered to the askers; a rollback past the version that held an item returns it to "answered",
so the next version trains it again; promoting forward marks it again."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant import history, questions
from assistant.registry import LINEAGE, Registry
from assistant.store import Store
from assistant.training.lineage import items_held, sync_queue


def _version(src, data, version: int, trained_from: int | None, item_ids: list[int]):
    dst = data / "adapters" / "crop" / f"v{version}"
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**manifest, "name": "crop", "version": version}))
    if trained_from is not None:
        (dst / LINEAGE).write_text(json.dumps({"trained_from": {"name": "crop", "version": trained_from},
                                               "added": [{"question": "q", "answer": "a", "item_ids": item_ids}],
                                               "replaced": []}))


@pytest.fixture()
def crop(tmp_path, tiny_registry):
    """crop v1 (from a file), v2 from v1 with items 1 and 2, v3 from v2 with item 3, v4 from v1
    with item 4 (trained after a rollback to v1)."""
    store = Store.open(tmp_path)
    for n in range(1, 6):
        item = questions.record_ask(store, "crop", f"question {n}?", "user:amina", chat_id=None)
        questions.answer(store, item, f"answer {n}", "omar")
    src = tiny_registry.get("alpha").path
    for version, source, ids in ((1, None, []), (2, 1, [1, 2]), (3, 2, [3]), (4, 1, [4])):
        _version(src, tmp_path, version, source, ids)
    return Registry(tiny_registry.base_sha256, tmp_path), store


def _states(store):
    return {i.id: (i.status, i.trained_version) for i in questions.items(store, None)}


def test_a_version_holds_what_its_chain_added(crop):
    registry, _ = crop
    get = lambda v: registry.get_version("crop", v)  # noqa: E731
    assert items_held(registry, get(1)) == {}
    assert items_held(registry, get(3)) == {1: 2, 2: 2, 3: 3}
    assert items_held(registry, get(4)) == {4: 4}


def test_rollback_returns_items_to_answered_and_promoting_marks_them_again(crop):
    registry, store = crop
    get = lambda v: registry.get_version("crop", v)  # noqa: E731
    assert sync_queue(store, registry, get(3)) == (3, 0)
    assert _states(store) == {1: ("trained", 2), 2: ("trained", 2), 3: ("trained", 3), 4: ("answered", None),
                              5: ("answered", None)}
    assert sync_queue(store, registry, get(2)) == (0, 1)  # back to v2: item 3 is not held
    assert _states(store)[3] == ("answered", None)
    assert [p["item_ids"] for p in questions.answered_pairs(store, "crop")] == [[3], [4], [5]]
    assert sync_queue(store, registry, get(1)) == (0, 2)  # back to v1: nothing of the queue is held
    assert sync_queue(store, registry, get(4)) == (1, 0)
    assert _states(store) == {1: ("answered", None), 2: ("answered", None), 3: ("answered", None),
                              4: ("trained", 4), 5: ("answered", None)}
    assert sync_queue(store, registry, get(3)) == (3, 1)  # forward again to v3
    assert sync_queue(store, registry, get(3)) == (0, 0)  # nothing more to do


def test_the_askers_chat_list_follows_the_rollback(crop):
    registry, store = crop
    chat, _, _ = history.add_turn(store, "user:amina", None, "question 1?",
                                  {"content": "", "adapter": "crop", "version": 1, "withheld": True})
    sync_queue(store, registry, registry.get_version("crop", 2))
    assert history.chats(store, "user:amina")[0].answered == 1
    sync_queue(store, registry, registry.get_version("crop", 1))
    assert history.chats(store, "user:amina")[0].answered == 0


def test_a_trainers_later_decision_is_kept_and_a_broken_chain_ends(crop, tmp_path):
    registry, store = crop
    shutil.rmtree(tmp_path / "adapters" / "crop" / "v2")  # v3's parent is gone
    registry = Registry(registry.base_sha256, tmp_path)
    assert items_held(registry, registry.get_version("crop", 3)) == {3: 3}
    with store.write() as db:  # item 3 was reopened by a trainer meanwhile
        db.execute("UPDATE queue_items SET status = 'open' WHERE id = 3")
    assert sync_queue(store, registry, registry.get_version("crop", 3)) == (0, 0)
    assert _states(store)[3] == ("open", None)
    assert sync_queue(None, registry, registry.get_version("crop", 3)) == (0, 0)
