"""Draft tokens for a greedy decode from a text the answer is likely to copy ("prompt lookup").

A checked answer is grounded on one Q&A pair, and the model mostly says what the pair says, often
in the pair's own words. Decoding a 270M model on a CPU is bound by reading its weights, so
evaluating several tokens in one batch costs little more than one. The engine therefore proposes
the tokens that follow, in the pair's answer, the latest words the model said, evaluates them in
one batch, and keeps those the model itself would have chosen (greedy: its top token at every
position). What the model says is unchanged in kind: every kept token is its own argmax; only
the batches differ, and with them the float rounding (llama.cpp evaluates several tokens of one
chat with other kernels than one), which is fixed for a given prompt and draft: a chat with a draft
always decodes alone in its lane (engines.lane), so the same question still gets the same answer
whoever else is asking, though not always the answer it would get undrafted.

The match is an n-gram lookup (the longest of the last MAX_NGRAM generated tokens that occurs in the
draft, its latest occurrence), the technique of Saxena's prompt-lookup decoding and of llama.cpp's
`lookup` example.
"""

from __future__ import annotations

MAX_NGRAM = 3  # the longest run of generated tokens looked up in the draft
MIN_NGRAM = 2  # one matching token is not enough: measured, it kept about one proposed token in three
MOST_PROPOSED = 10  # draft tokens evaluated in one batch at most (more is wasted when the model leaves the draft);
# the llama.cpp engine proposes fewer, BATCH_ROWS - 1, so a batch never changes a logit (engines.lane)

# Why not every match: each proposed token costs its share of the batch, and the 262k-word output layer,
# most of this model's weights, is computed for every proposed position. In one batch of 11 tokens each
# token beyond the first cost about 0.37 of a single-token step (measured on the real base, 2 cores, a busy
# machine), so a proposal pays when more than about a third of its tokens are kept. After a one-token match
# (a common word of the pair) about 35% were, and half the proposals kept none; after two or three matching
# tokens, or while the answer follows the draft from its first word, nearly all were.


def propose(generated: list[int], draft: list[int], most: int = MOST_PROPOSED) -> list[int]:
    """The draft tokens that follow the latest match of `generated`'s tail in `draft` (at least
    MIN_NGRAM tokens long, or the whole answer so far when it is the draft's opening), at most
    `most`. [] when nothing matches."""
    if most <= 0 or not draft:
        return []
    if generated == draft[:len(generated)]:  # the answer so far is the draft's own opening
        return draft[len(generated):len(generated) + most]
    for n in range(min(MAX_NGRAM, len(generated)), MIN_NGRAM - 1, -1):
        tail = generated[-n:]
        for start in range(len(draft) - n, -1, -1):  # latest occurrence first
            if draft[start:start + n] == tail:
                follow = draft[start + n:start + n + most]
                if follow:
                    return follow
                break  # the tail ends the draft: a shorter n-gram would only match earlier, staler text
    return []


def accepted(proposal: list[int], predictions: list[int]) -> int:
    """How many proposed tokens the model confirms: predictions[i] is its own choice where
    proposal[i] stands (predictions has one more entry: its choice after the last one)."""
    n = 0
    while n < len(proposal) and predictions[n] == proposal[n]:
        n += 1
    return n
