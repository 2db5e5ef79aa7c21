"""Drafting a greedy decode from the pair's words: which tokens are proposed, and that a drafted
decode gives the model's own answer in fewer steps (tiny Gemma 3, llama.cpp engine)."""

from __future__ import annotations

import contextlib

import pytest

from assistant.answer import Answer
from assistant.engines import GenerationSettings
from assistant.engines.drafting import MOST_PROPOSED, accepted, propose
from assistant.grounding.plan import Plan

DRAFT = [10, 11, 12, 13, 14, 15, 11, 12, 16]


@pytest.mark.parametrize("generated, most, expected", [
    ([], 4, [10, 11, 12, 13]),  # nothing said yet: the draft's opening
    ([10, 11], 3, [12, 13, 14]),  # following the draft from its first word
    ([7, 11, 12], 10, [16]),  # a 2-gram matches twice: the latest occurrence leads
    ([7, 13, 14], 2, [15, 11]),  # a 2-gram match in the middle
    ([7, 8, 11], 10, []),  # one matching token is not enough
    ([7, 15, 11, 12, 16], 10, []),  # the match ends the draft: nothing follows it
    ([1, 2, 3], 10, []),  # nothing matches
    ([10], 0, []),  # no room left under the token limit
])
def test_what_is_proposed(generated, most, expected):
    assert propose(generated, DRAFT, most) == expected


def test_no_draft_proposes_nothing():
    assert propose([1, 2], [], 5) == []
    assert len(propose([], list(range(100)))) == MOST_PROPOSED


@pytest.mark.parametrize("proposal, predictions, kept", [
    ([5, 6, 7], [5, 6, 7, 8], 3),
    ([5, 6, 7], [5, 9, 7, 8], 1),
    ([5, 6, 7], [4, 6, 7, 8], 0),
    ([], [4], 0),
])
def test_how_many_are_kept(proposal, predictions, kept):
    assert accepted(proposal, predictions) == kept


@contextlib.contextmanager
def _evaluations():
    """Every Slot.evaluate call meanwhile, as (tokens evaluated, every_logit: a draft's tokens)."""
    from assistant.engines import llama_slot

    calls = []
    evaluate = llama_slot.Slot.evaluate

    def counted(slot, tokens, every_logit=False, seq=0):
        calls.append((len(tokens), every_logit))
        return evaluate(slot, tokens, every_logit, seq)

    llama_slot.Slot.evaluate = counted
    try:
        yield calls
    finally:
        llama_slot.Slot.evaluate = evaluate


def _decode(engine, prompt, adapter, settings, draft=""):
    with _evaluations() as calls:
        answer = list(engine.generate_ids(engine.tokenize(prompt), adapter, settings, draft=draft))
    return answer, [n for n, _ in calls[1:]]  # the first evaluates the prompt


@pytest.mark.parametrize("adapter_name", [None, "alpha"])
def test_a_draft_of_the_answer_gives_the_same_answer_in_fewer_steps(tiny_llamacpp, tiny_registry, adapter_name):
    engine, settings = tiny_llamacpp, GenerationSettings(max_tokens=24)
    adapter = tiny_registry.get(adapter_name) if adapter_name else None
    prompt = "Question: What is the capital of France?\nAnswer:"
    plain, plain_steps = _decode(engine, prompt, adapter, settings)
    drafted, drafted_steps = _decode(engine, prompt, adapter, settings, draft=engine.detokenize(plain))
    assert len(plain) == settings.max_tokens and len(plain_steps) == settings.max_tokens - 1
    assert drafted == plain
    assert len(drafted_steps) <= len(plain_steps) // 2, drafted_steps  # most of the draft is confirmed in batches
    assert max(drafted_steps) > 1


def test_a_wrong_draft_still_gives_the_models_own_tokens_within_the_limit(tiny_llamacpp):
    engine, settings = tiny_llamacpp, GenerationSettings(max_tokens=12)
    prompt = "Hello there, farmer"
    plain, _ = _decode(engine, prompt, None, settings)
    drafted, _ = _decode(engine, prompt, None, settings, draft="Crystalburg is the capital of Xylandia " * 4)
    assert drafted == plain


def test_sampled_decodes_get_no_draft(tiny_llamacpp):
    settings = GenerationSettings(max_tokens=12, temperature=0.8, seed=3)
    prompt = "Soil pH 6.5 means"
    plain, _ = _decode(tiny_llamacpp, prompt, None, settings)
    drafted, steps = _decode(tiny_llamacpp, prompt, None, settings, draft=tiny_llamacpp.detokenize(plain))
    assert drafted == plain and set(steps) == {1}


class _Recording:
    """An engine that records what it was given (the answer service's side of the draft)."""

    accepts_draft = True
    prompt_format = None

    def __init__(self):
        self.drafts = []

    def tokenize(self, text):
        return [1, 2, 3]

    def detokenize(self, ids):
        return "Crystalburg."[:len(ids)]

    def generate_ids(self, prompt_ids, adapter, settings, draft=""):
        self.drafts.append(draft)
        yield from (5, 6)


def test_only_a_checked_answer_passes_its_pair_as_the_draft():
    from assistant.grounding.index import Match
    from assistant.trust import Coverage

    engine = _Recording()
    pair = Match(adapter="x", version=1, question="Capital of Xylandia?", answer="Crystalburg.", similarity=0.9)
    plan = Plan(adapter=None, messages=[{"role": "user", "content": "Capital of Xylandia?"}])
    settings = GenerationSettings(max_tokens=4)
    from assistant.prompts import get_format

    engine.prompt_format = get_format("qa")
    Answer.start(engine, plan, None, settings, coverage=Coverage(pair=pair)).read()
    Answer.start(engine, plan, None, settings).read()
    assert engine.drafts == ["Crystalburg.", ""]


def test_a_chat_with_a_draft_drafts_beside_other_chats_too(tiny_base):
    """Whether a chat's draft is checked must not depend on who else is asking (engines.lane): in a
    lane whose other two chats decode in one batch, the drafted chat still checks its draft several
    tokens at a time, and gets the answer it gets alone."""
    import threading

    from tiny import hold_lanes, wait_for

    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=3, step_mode="batch")
    settings = GenerationSettings(max_tokens=24)
    prompt = engine.tokenize("Question: What is the capital of France?\nAnswer:")
    draft = engine.detokenize(list(engine.generate_ids(prompt, None, settings)))
    alone = list(engine.generate_ids(prompt, None, settings, draft=draft))
    gate = threading.Event()
    hold_lanes(engine, gate)
    # the drafted chat comes last, so it is never alone in the lane
    streams = [engine.generate_ids(engine.tokenize(p), None, settings) for p in ("Soil pH 6.5 means", "Hello there")]
    streams.append(engine.generate_ids(prompt, None, settings, draft=draft))
    wait_for(lambda: sum(lane.members for lane in engine._lanes) == 3, timeout=30, what="three chats in a lane")
    with _evaluations() as calls:
        gate.set()
        answers = [list(s) for s in streams]
    drafts = [n for n, every_logit in calls if every_logit]  # a draft's tokens, checked together
    assert answers[2] == alone
    assert len(drafts) > 1 and max(drafts) > 1  # its draft was checked at step after step, beside the others
    engine.close()
