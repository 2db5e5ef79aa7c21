"""Grounding-aware training examples, in the style of RAFT (Zhang et al. 2024).

In a grounded chat the prompt carries `Fact:` lines, the answers of the nearest pairs in the
adapter's Q&A (assistant.grounding.plan), and the nearest pair is not always the right one. An
adapter shown only its own answer as the fact (the earlier `grounded_per_step`) learns to copy
whatever fact it is given, right or wrong. So each training pair is shown three ways:
- its own answer alone, as a checked chat shows the pair it checks against;
- its own answer among distractors (the answers of the training pairs whose questions share the
  most words with it, as retrieval would rank them), in a random place;
- distractors only, for a share of the pairs (`grounded_without_pair`): the answer must come from
  what the adapter learnt, not from a fact about something else.
The target is always the pair's own answer. Distractors are other facts, never another wording of
the same fact (augmentation repeats answers), and never held-out rows: only training pairs go in.
"""

from __future__ import annotations

import random
import re

_WORD = re.compile(r"[a-z0-9°%]+")
_COMMON = frozenset("a an the of in on at to for is are was be do does what which when how why who whom whose "
                    "should can could i my we our it its and or with by from much many most best".split())


def words(text: str) -> frozenset[str]:
    """The words of a question that say what it is about (lower case, common words left out)."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _COMMON)


def nearest_others(pairs: list[tuple[str, str]], i: int, count: int,
                   vocabulary: list[frozenset[str]] | None = None) -> list[int]:
    """Indexes of the `count` pairs about other facts whose questions share the most words with pair i.
    `vocabulary`: each pair's `words(question)`, when the caller asks for many i of the same pairs."""
    vocabulary = vocabulary or [words(question) for question, _ in pairs]
    own_answer, mine = pairs[i][1], vocabulary[i]
    scored = []
    seen_answers = {own_answer}
    for j, (_, answer) in enumerate(pairs):
        if answer in seen_answers:
            continue
        seen_answers.add(answer)
        theirs = vocabulary[j]
        overlap = len(mine & theirs) / (len(mine | theirs) or 1)
        scored.append((-overlap, j))
    scored.sort()
    return [j for _, j in scored[:count]]


def examples(pairs: list[tuple[str, str]], distractors: int, without_pair: float,
             seed: int) -> list[tuple[str, str, list[str]]]:
    """(question, answer, facts) for every pair, shown the three ways the module docstring says."""
    rng = random.Random(seed + 2)
    out = []
    vocabulary = [words(question) for question, _ in pairs]  # once, not once per pair
    for i, (question, answer) in enumerate(pairs):
        others = [pairs[j][1] for j in nearest_others(pairs, i, distractors, vocabulary)]
        out.append((question, answer, [answer]))
        if others:
            among = [*others]
            among.insert(rng.randrange(len(among) + 1), answer)
            out.append((question, answer, among))
            if rng.random() < without_pair:
                out.append((question, answer, others))
    return out
