"""Open questions that may ask the same thing are offered beside an item (never merged): same
adapter, crops agreeing, no opposite change, above the threshold; one answer goes to those ticked."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import questions
from assistant.grounding.embedder import shared_embedder
from assistant.similar_questions import SIMILAR, CachedEncoder, similar_open_items
from assistant.store import Store
from ui import questions as queue_ui


@pytest.fixture()
def store(tmp_path):
    return Store.open(tmp_path)


def _open(store, *texts, adapter="agriculture"):
    ids = [questions.record_ask(store, adapter, t, f"user:u{n}") for n, t in enumerate(texts)]
    return ids, questions.items(store, None, limit=1000)


def test_real_wordings_are_offered_and_other_crops_and_opposite_changes_are_not(store):
    (asked, *_), found = _open(store, "How deep should I plant maize seed?", "maize seed: how far down do i put it",
                               "How deep should I plant bean seed?", "Will it rain tomorrow?")
    (acid, *_), more = _open(store, "What raises the pH of an acid soil?", "What lowers the pH of soil?",
                             "what do i spread on acid soil to raise its ph")
    encode = CachedEncoder(shared_embedder().encode)
    item = next(i for i in found if i.id == asked)
    offered = [o.question for o, _ in similar_open_items(item, found, encode)]
    assert offered == ["maize seed: how far down do i put it"]
    item = next(i for i in more if i.id == acid)
    assert [o.question for o, _ in similar_open_items(item, more, encode)] == ["what do i spread on acid soil to raise its ph"]


class Vectors:
    """A fake embedder: each text's vector is given; counts what it was asked to encode."""

    def __init__(self, cosines: dict[str, float]):
        self.cosines, self.asked = cosines, []

    def __call__(self, texts):
        self.asked.append(list(texts))
        out = []
        for t in texts:
            c = self.cosines.get(t, 1.0)
            out.append([c, float(np.sqrt(max(0.0, 1 - c * c)))])
        return np.array(out, dtype=np.float32)


def test_only_open_items_of_the_same_adapter_above_the_threshold_most_similar_first(store):
    ids, _ = _open(store, "q lead?", "q near?", "q nearer?", "q far?", "q decided?")
    _open(store, "q other adapter?", adapter="xylandia")
    questions.dismiss(store, ids[4], "duplicate", "omar")
    found = questions.items(store, None, limit=1000)
    lead = next(i for i in found if i.id == ids[0])
    fake = Vectors({"q near?": SIMILAR + 0.01, "q nearer?": 0.95, "q far?": SIMILAR - 0.05, "q decided?": 0.99,
                    "q other adapter?": 0.99})
    assert [(o.question, s) for o, s in similar_open_items(lead, found, fake)] == [("q nearer?", 0.95),
                                                                              ("q near?", round(SIMILAR + 0.01, 3))]
    assert similar_open_items(lead, [lead], fake) == []


def test_the_cache_encodes_each_text_once_and_stays_bounded():
    fake = Vectors({})
    cached = CachedEncoder(fake, size=3)
    cached(["a", "b"]), cached(["b", "a", "a"])
    assert fake.asked == [["a", "b"]]
    assert cached(["c", "d"]).shape == (2, 2) and fake.asked[-1] == ["c", "d"]  # over the bound: started again


def test_one_answer_goes_to_the_ticked_similar_items_and_a_decided_one_is_reported(store):
    ids, _ = _open(store, "How deep is maize sown?", "maize planting depth?", "how far down for maize seed")
    questions.dismiss(store, ids[2], "duplicate", "grace")  # another trainer, a second earlier
    message = queue_ui.decide_item(store, "answer", ids[0], "About 5 cm deep.", "omar", [ids[1], ids[2]])
    assert "So were 1 similar question." in message and "Not changed: item" in message and "grace dismissed" in message
    assert [p["question"] for p in questions.answered_pairs(store, "agriculture")] == ["How deep is maize sown?",
                                                                                      "maize planting depth?"]
    assert queue_ui.similar_choices(store, ids[0], None).visible is False  # no embedder: nothing offered
