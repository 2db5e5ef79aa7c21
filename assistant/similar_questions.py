"""Open questions in the trainers' queue that may ask the same thing in other words.

The queue groups questions that differ only in case, spacing or punctuation (assistant.questions);
farmers also ask one thing in many wordings ("how deep do I plant maize" and "maize seed depth?").
Measured with the packaged embedder on the repository's own sets: wordings of one fact (114:
farmer paraphrases and held-out rows, each with the question it rewords) have a median cosine of
0.78, a quarter under 0.71, while distinct questions reach 0.86 ("what pathogen causes cassava
mosaic?" and "which insect spreads it?"). No threshold separates them, and one answer written for
a wrongly merged question would train a wrong pair: so similar questions are *offered* beside an
item, never merged. The trainer ticks those that really ask the same and one answer (or
dismissal) goes to each. At SIMILAR, 88 of the 114 rewordings are offered, and among the 230
distinct training questions of `agriculture` (close siblings by design) 0.17 wrong offers each.

Offered: open items of the same adapter at cosine >= SIMILAR whose crops and animals agree (the
maize question is never offered beside the beans one) and that do not ask about opposite changes.
"""

from __future__ import annotations

from assistant.checking import opposed, subjects_in

SIMILAR = 0.70  # offered at or above: most wordings of one fact, and few distinct questions, score so
MAX_OFFERED = 8


def similar_open_items(item, candidates, encode) -> list[tuple[object, float]]:
    """[(queue item, cosine)] of `candidates` that may ask what `item` asks, the most similar first.
    `encode(texts)` returns normalised embeddings (grounding.embedder.Embedder.encode)."""
    others = [c for c in candidates if c.id != item.id and c.adapter == item.adapter and c.status == "open"
              and _subjects_agree(item.question, c.question) and not opposed(item.question, c.question)]
    if not others:
        return []
    vectors = encode([item.question, *(c.question for c in others)])
    scored = [(c, round(float(vectors[0] @ vectors[n]), 3)) for n, c in enumerate(others, 1)]
    return sorted((s for s in scored if s[1] >= SIMILAR), key=lambda s: -s[1])[:MAX_OFFERED]


class CachedEncoder:
    """`encode` remembering each text's vector (an item is shown many times; its text never changes)."""

    def __init__(self, encode, size: int = 4000):
        self._encode, self._size, self._vectors = encode, size, {}

    def __call__(self, texts):
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if len(self._vectors) + len(missing) > self._size:  # bounded: start again with these texts only
            self._vectors.clear()
            missing = list(dict.fromkeys(texts))
        if missing:
            self._vectors.update(zip(missing, self._encode(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])


def _subjects_agree(question: str, other: str) -> bool:
    """Both about the same crops and animals, or at least one about none in particular."""
    ours, theirs = subjects_in(question), subjects_in(other)
    return not ours or not theirs or ours == theirs
