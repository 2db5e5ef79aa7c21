"""The similar-question lint at scale: blocked comparison equals the full matrix, memory stays
linear, and the shared embedder takes turns chunk by chunk (a chat never waits for a whole file).

Uses a fake embedder (deterministic vectors, no model), so these run in seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from assistant import lint
from assistant.data import Record
from assistant.grounding.embedder import ENCODE_CHUNK, Embedder
from assistant.lint import CROSS_CONFLICT, NEAR_DUPLICATE, lint_records


class FakeEmbedder:
    """Text -> a unit vector: texts sharing a 'topic' word are close, others far apart."""

    def encode(self, texts):
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for n, text in enumerate(texts):
            topic = text.split()[0]
            seed = int(hashlib.sha256(topic.encode()).hexdigest()[:8], 16)
            base = np.random.default_rng(seed).standard_normal(384)
            noise = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).standard_normal(384)
            vector = base + 0.25 * noise
            out[n] = vector / np.linalg.norm(vector)
        return out


def corpus(n: int) -> list[Record]:
    rows = []
    for i in range(n):
        topic = f"t{i % (n // 3 or 1)}"  # about three questions a topic: near-duplicates
        rows.append(Record(f"{topic} question {i}?", f"{topic} answer {i % 2}", i + 1,
                           "test" if i % 7 == 0 else "train"))
    return rows


def brute_force(records, embedder) -> list[tuple]:
    """What lint_records found before it was blocked: the full N x N matrix."""
    vectors = embedder.encode([r.question for r in records])
    answers = embedder.encode([r.answer for r in records])
    sims = vectors @ vectors.T
    found = []
    for i, j in zip(*np.nonzero(np.triu(sims, 1) >= NEAR_DUPLICATE), strict=True):
        a, b = records[i], records[j]
        if a.split == "test" and b.split == "test":
            continue
        same = lint._same_answer(a.answer, b.answer, float(answers[i] @ answers[j]))
        if a.split != b.split and same:
            continue
        found.append(((a.row, b.row), round(float(sims[i, j]), 3), same))
    found.sort(key=lambda f: (f[2], -f[1]))
    return found


def test_blocked_near_duplicates_equal_the_full_matrix(monkeypatch):
    monkeypatch.setattr(lint, "LINT_BLOCK", 7)  # many blocks, ragged edges
    records = corpus(60)
    findings = lint_records(records, embedder=FakeEmbedder())
    got = [(tuple(f.rows), f.similarity, "same answer" in f.message) for f in findings]
    assert got == brute_force(records, FakeEmbedder()) and len(got) > 10


def test_near_duplicate_pairs_are_capped_with_a_note(monkeypatch):
    monkeypatch.setattr(lint, "MAX_LINT_PAIRS", 5)
    records = [Record(f"same question {i}?", "same answer", i + 1) for i in range(20)]  # 190 close pairs
    findings = lint_records(records, embedder=FakeEmbedder())
    assert [f.kind for f in findings] == ["near-duplicate"] * 5 + ["note"]
    assert "more than 5 pairs" in findings[-1].message
    assert sorted(tuple(f.rows) for f in findings[:5]) == [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6)]  # by row


def test_cross_adapter_nearest_is_blocked_and_matches_argmax(monkeypatch, tmp_path):
    monkeypatch.setattr(lint, "LINT_BLOCK", 4)
    theirs = tmp_path / "theirs.jsonl"
    lines = [f'{{"question": "t{i} other {i}?", "answer": "different {i}"}}' for i in range(30)]
    theirs.write_text("\n".join(lines) + "\n")
    records = corpus(30)
    findings = lint_records(records, embedder=FakeEmbedder(), datasets=[("other", 3, str(theirs))])
    cross = [f for f in findings if f.kind == "cross-adapter"]
    embedder = FakeEmbedder()
    mine = embedder.encode([r.question for r in records])
    pool = embedder.encode([f"t{i} other {i}?" for i in range(30)])
    sims = mine @ pool.T
    expected = [records[i].row for i in range(len(records)) if round(float(sims[i].max()), 4) >= CROSS_CONFLICT]
    assert [f.rows[0] for f in cross] == expected and expected
    assert all("other's 't" in f.message for f in cross)


def test_lint_memory_is_linear_in_rows():
    """20,000 rows: the old N x N matrix alone was 1.6 GB; blocked, the lint's numpy peak is the
    vectors (30 MB) plus a few 4 MB blocks."""
    import tracemalloc

    n = 20_000
    vectors = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tracemalloc.start()
    try:
        pairs, more = lint._close_pairs(vectors, NEAR_DUPLICATE, lambda i, j: True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pairs == [] and not more  # random directions are never near-duplicates
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"


class GatedModel:
    """A stand-in SentenceTransformer that records the order of its calls; the first call waits
    for a gate, so a test can queue another caller behind it."""

    def __init__(self):
        self.calls: list[str] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def encode(self, texts, **_):
        self.calls.append(texts[0])
        if len(self.calls) == 1:
            self.started.set()
            assert self.gate.wait(30)
        return np.ones((len(texts), 384), dtype=np.float32)


def test_a_chat_waits_for_one_chunk_of_a_bulk_encode_not_the_whole_file():
    embedder = Embedder()
    model = embedder._model = GatedModel()
    bulk = [f"row {i}" for i in range(ENCODE_CHUNK * 10)]  # ten chunks
    worker = threading.Thread(target=embedder.encode, args=(bulk,))
    worker.start()
    assert model.started.wait(30)  # the bulk caller is inside its first chunk
    asker = threading.Thread(target=embedder.encode, args=(["a chat question"],))
    asker.start()
    deadline = time.monotonic() + 30
    while embedder._next_ticket < 2 and time.monotonic() < deadline:  # the chat has taken its ticket
        time.sleep(0.01)
    model.gate.set()
    worker.join(30)
    asker.join(30)
    # The chat took its ticket while the first chunk ran, so it ran second, before the other nine.
    assert model.calls[1] == "a chat question", model.calls[:3]
    assert len(model.calls) == 11


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_files_lint_without_error(n):
    assert isinstance(lint_records(corpus(n), embedder=FakeEmbedder(), datasets=[]), list)



def test_train_tab_lint_runs_in_its_child_and_finds_what_the_index_finds(tmp_path):
    """The Train tab's lint (own embedder, other adapters' stored Q&A) reports the same findings
    as the in-process lint against the index did (test_knowledge's file)."""
    import types

    from qa_adapters import ORCHARD, XYLANDIA, jsonl, publish_fake_adapter
    from test_knowledge import LINT_FILE

    from assistant.registry import Registry
    from ui.train import check_upload

    registry = Registry("0" * 64, tmp_path / "data")
    publish_fake_adapter(registry, "orchard", ORCHARD)
    publish_fake_adapter(registry, "xylandia", XYLANDIA)
    upload = tmp_path / "upload.jsonl"
    upload.write_bytes(jsonl(LINT_FILE))
    first, final = list(check_upload(str(upload), types.SimpleNamespace(registry=registry)))
    assert "Looking for similar questions" in first[0] and first[1] == str(upload)  # shown before the lint
    markdown, accepted, _ = final
    assert accepted == str(upload)
    assert markdown.count("🔎 **Similar questions**") == 5  # 3 near-duplicates, 2 cross-adapter
    assert "orchard's 'Which river waters the Quenth valley?'" in markdown and "DIFFERENT answers" in markdown
