"""Batched decoding in the llama.cpp engine: chats on one adapter share a batch, each still gets the
answer it gets alone, and on the embedded base a row's logits do not depend on its batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from assistant.engines import GenerationSettings

GREEDY = GenerationSettings(max_tokens=24)
PROMPTS = ["Question: What grows well in sandy soil?\nAnswer:", "Question: How do I store seed potatoes?\nAnswer:",
           "Question: When should wheat be harvested?\nAnswer:", "Question: What is compost?\nAnswer:",
           "Question: Why rotate crops?\nAnswer:", "Question: How much water do tomatoes need?\nAnswer:",
           "Question: How do bees help farms?\nAnswer:", "Question: What is a cover crop?\nAnswer:"]


def _count_batches(engine) -> list[int]:
    sizes: list[int] = []
    for slot in engine._slots:
        def counted(rows, _evaluate_rows=slot.evaluate_rows):
            sizes.append(len(rows))
            return _evaluate_rows(rows)
        slot.evaluate_rows = counted
    return sizes


def _ask_together(engine, prompts: list[str], adapter, settings=GREEDY) -> list[list[int]]:
    from tiny import hold_lanes, wait_for

    gate = threading.Event()
    hold_lanes(engine, gate)
    streams = [engine.generate_ids(engine.tokenize(p), adapter, settings) for p in prompts]
    wait_for(lambda: sum(lane.members for lane in engine._lanes) == len(prompts), timeout=30,
             what="every request to be in a lane")
    gate.set()
    return [list(s) for s in streams]


def test_chats_on_one_adapter_decode_in_one_batch_each_with_its_own_answer(tiny_base, tiny_registry):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=5, step_mode="batch")
    alpha = tiny_registry.get("alpha")
    alone = [list(engine.generate_ids(engine.tokenize(p), alpha, GREEDY)) for p in PROMPTS[:5]]
    assert len({tuple(a) for a in alone}) > 1  # the questions really get different answers
    sizes = _count_batches(engine)
    assert _ask_together(engine, PROMPTS[:5], alpha) == alone
    assert max(sizes) == 5  # all five were decoded in one batch
    assert engine.stats() == {"slots": 1, "free": 1, "busy": 0, "waiting": 0}


def test_chats_in_one_lane_taking_turns_each_get_their_own_answer(tiny_base, tiny_registry):
    """The other way a lane decodes several chats (engines.step_mode): each alone, in turn."""
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=4, step_mode="turns")
    beta = tiny_registry.get("beta")
    alone = [list(engine.generate_ids(engine.tokenize(p), beta, GREEDY)) for p in PROMPTS[:4]]
    sizes = _count_batches(engine)
    assert _ask_together(engine, PROMPTS[:4], beta) == alone
    assert sizes == []  # no batch of several chats
    assert engine._step_modes.costs() == {}  # a fixed way is not measured


def test_measured_chats_use_both_ways_and_keep_their_answers(tiny_base):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=3)
    alone = [list(engine.generate_ids(engine.tokenize(p), None, GREEDY)) for p in PROMPTS[:3]]
    assert _ask_together(engine, PROMPTS[:3], None) == alone
    assert set(engine._step_modes.costs()) == {"batch", "turns"}  # each way was measured


@pytest.mark.parametrize("costs, step, expected", [
    ({}, 0, "batch"),  # nothing measured: the batch first
    ({"batch": 0.02}, 5, "turns"),  # then turns
    ({"batch": 0.02, "turns": 0.01}, 5, "turns"),  # then the faster
    ({"batch": 0.01, "turns": 0.02}, 5, "batch"),
    ({"batch": 0.02, "turns": 0.01}, 63, "batch"),  # and at a probe the other
    ({"batch": 0.01, "turns": 0.02}, 62, "turns"),
])
def test_which_way_a_lane_decodes(costs, step, expected):
    from assistant.engines.step_mode import StepModeChooser

    chooser = StepModeChooser()
    for mode, cost in costs.items():
        chooser.record(mode, cost)
    assert chooser.choose(step) == expected


def test_a_full_lane_makes_the_next_chat_wait_and_another_adapter_takes_its_own_lane(tiny_base, tiny_registry):
    """Two lanes of two chats: a third alpha chat waits for room (first come, first served), and
    each of the five gets its own adapter's answer."""
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=2, batch=2)
    alpha, beta = tiny_registry.get("alpha"), tiny_registry.get("beta")
    plan = [(PROMPTS[0], alpha), (PROMPTS[1], beta), (PROMPTS[2], alpha), (PROMPTS[3], beta), (PROMPTS[4], alpha)]
    alone = [list(engine.generate_ids(engine.tokenize(p), a, GREEDY)) for p, a in plan]
    from tiny import hold_lanes, wait_for

    gate = threading.Event()
    hold_lanes(engine, gate)
    streams = []
    for i, (prompt, adapter) in enumerate(plan):  # one at a time: where a request goes depends on who came first
        streams.append(engine.generate_ids(engine.tokenize(prompt), adapter, GREEDY))
        wait_for(lambda n=i + 1: sum(lane.members for lane in engine._lanes) + engine.stats()["waiting"] == n,
                 timeout=30, what=f"request {i + 1} to be placed or waiting")
    assert engine.stats()["waiting"] == 1  # the third alpha chat: both lanes are busy, alpha's is full
    assert sorted((lane.members, lane.key) for lane in engine._lanes if lane.members) == [(2, alpha.key), (2, beta.key)]
    gate.set()
    assert [list(s) for s in streams] == alone
    assert engine.stats() == {"slots": 2, "free": 2, "busy": 0, "waiting": 0}


def test_sampled_chats_in_one_batch_are_each_reproducible(tiny_base):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=3)
    settings = GenerationSettings(max_tokens=16, temperature=0.9, seed=7)
    alone = [list(engine.generate_ids(engine.tokenize(p), None, settings)) for p in PROMPTS[:3]]
    assert _ask_together(engine, PROMPTS[:3], None, settings) == alone


def test_a_chat_that_leaves_a_batch_frees_its_place_and_the_others_go_on(tiny_base):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=3)
    alone = [list(engine.generate_ids(engine.tokenize(p), None, GREEDY)) for p in PROMPTS[:3]]
    from tiny import hold_lanes, wait_for

    gate = threading.Event()
    hold_lanes(engine, gate)
    streams = [engine.generate_ids(engine.tokenize(p), None, GREEDY) for p in PROMPTS[:3]]
    wait_for(lambda: engine._lanes[0].members + engine._lanes[1].members == 3, timeout=30, what="three in a lane")
    gate.set()
    next(streams[1])
    streams[1].close()  # leaves mid-answer
    assert [list(streams[0]), list(streams[2])] == [alone[0], alone[2]]
    wait_for(lambda: engine.stats()["busy"] == 0, timeout=30, what="the lane to be idle")
    assert sum(lane.members for lane in engine._lanes) == 0


def test_on_the_embedded_base_a_row_gets_its_solo_logits_in_a_full_batch(embedded):
    """The reason greedy answers do not depend on who else is asking: BATCH_ROWS sequences decoded
    in one batch give every row bit-identical logits to that sequence decoded alone, step after
    step (assistant.engines.lane). If this fails on a machine, lower BATCH_ROWS there (the CPU's
    kernels pick another path at that batch size). A draft's tokens evaluated together are not
    bit-identical to one-token decoding (see the next test)."""
    from assistant.engines.llamacpp import BATCH_ROWS, LlamaCppEngine

    engine = LlamaCppEngine(embedded.gguf_path, prompt_format=embedded.prompt_format, slots=1)
    slot, steps = engine._slots[0], 8
    prompts = [engine.tokenize(p) for p in PROMPTS[:BATCH_ROWS]]
    alone = []
    for prompt in prompts:
        slot.prepare(prompt, 0)
        rows, token = [], slot.top_token()
        for _ in range(steps):
            slot.evaluate([token], seq=0)
            rows.append(slot.logits())
            token = int(rows[-1].argmax())
        alone.append(rows)
        slot.forget()
    tokens = {}
    for seq, prompt in enumerate(prompts):
        slot.prepare(prompt, seq)
        tokens[seq] = slot.top_token()
    for step in range(steps):
        rows = slot.evaluate_rows(tokens)
        for seq in tokens:
            logits = slot.logits(rows[seq])
            assert np.array_equal(logits, alone[seq][step]), (seq, step, float(np.abs(logits - alone[seq][step]).max()))
            tokens[seq] = int(logits.argmax())
    slot.forget()


# A checked answer's pair is its draft. Asked with it, the bare base answers this question otherwise
# than without it here (llama.cpp evaluates a draft's tokens with other kernels than one token).
PUSH_PULL = ("In East Africa, which plant is sown between maize rows in push-pull to drive off stemborers?",
             "In East Africa, push-pull intercrops maize with desmodium, which repels stemborer moths, and "
             "borders the field with Napier grass, which attracts them.")


def test_on_the_embedded_base_a_chat_with_a_draft_gets_the_same_answer_beside_other_chats(embedded):
    """The same drafted chat alone, and in a lane where two other chats decode in one batch, gets the
    same tokens: a chat with a draft always steps alone (assistant.engines.lane). When it drafted only
    while alone, it got the undrafted answer beside others."""
    from tiny import hold_lanes, wait_for

    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(embedded.gguf_path, prompt_format=embedded.prompt_format, slots=1, batch=3,
                            step_mode="batch")
    question, fact = PUSH_PULL
    prompt = engine.tokenize(engine.prompt_format.render([{"role": "user", "content": question, "facts": [fact]}]))
    settings = GenerationSettings(max_tokens=32)
    alone = list(engine.generate_ids(prompt, None, settings, draft=fact))
    others_alone = [list(engine.generate_ids(engine.tokenize(p), None, settings)) for p in PROMPTS[:2]]
    gate = threading.Event()
    hold_lanes(engine, gate)
    # the drafted chat comes last, so it is never alone in the lane
    streams = [engine.generate_ids(engine.tokenize(p), None, settings) for p in PROMPTS[:2]]
    streams.append(engine.generate_ids(prompt, None, settings, draft=fact))
    wait_for(lambda: sum(lane.members for lane in engine._lanes) == 3, timeout=30, what="three chats in a lane")
    sizes = _count_batches(engine)
    gate.set()
    assert [list(s) for s in streams] == [*others_alone, alone]
    assert max(sizes) == 2  # the two others did decode in one batch beside it
    engine.close()


@pytest.mark.parametrize("batch", [1, 3])
def test_stats_and_close_with_chats_in_a_batch(tiny_base, batch):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=batch)
    streams = [engine.generate_ids(engine.tokenize(PROMPTS[0]), None, GenerationSettings(max_tokens=2000))
               for _ in range(4)]
    next(streams[0])
    engine.close(timeout=30)
    for stream in streams:
        list(stream)
    assert engine.stats() == {"slots": 1, "free": 1, "busy": 0, "waiting": 0}
