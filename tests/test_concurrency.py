"""Many chats at once, some abandoned: every request that is not abandoned gets its own adapter's
answer, and afterwards every slot is free and nobody is left waiting.

The assertions hold under any interleaving, so the test cannot pass or fail by timing; the only
bound is the join timeout, which only a request stuck for good ever reaches.
"""

from __future__ import annotations

import gc
import threading

import pytest

from assistant.answer import stream_text
from assistant.engines import GenerationSettings

SETTINGS = GenerationSettings(max_tokens=48)
PROMPT = "Question: What grows well in sandy soil?\nAnswer:"
ADAPTERS = (None, "alpha", "beta")
# What each request does with its stream, assigned round-robin so every kind meets every adapter.
KINDS = ("complete", "close_early", "drop_early", "never_read_again", "consumer_raises",
         "cancel_unread", "complete", "complete")
REQUESTS = 48  # six times the slots of the busiest engine below


class ConsumerFailed(Exception):
    pass


def _run(engine, adapter, kind: str, index: int, results: dict, kept: list) -> None:
    stream = engine.generate_ids(engine.tokenize(PROMPT), adapter, SETTINGS)
    if kind == "complete":
        results[index] = list(stream)
    elif kind == "close_early":
        next(stream)
        stream.close()
    elif kind == "drop_early":
        next(stream)
        del stream  # nobody closes it: dropping the last reference must end the decode
        gc.collect()
    elif kind == "never_read_again":
        next(stream)
        kept.append(stream)  # still referenced, never read again: its decode still ends by itself
    elif kind == "consumer_raises":
        try:
            for _ in stream:
                raise ConsumerFailed
        except ConsumerFailed:
            pass
    elif kind == "cancel_unread":
        stream.close()  # cancelled while (most likely) still waiting for a slot


def _storm(engine, registry) -> tuple[dict, dict, list]:
    adapters = {name: registry.get(name) if name else None for name in ADAPTERS}
    expected = {name: list(engine.generate_ids(engine.tokenize(PROMPT), adapter, SETTINGS)) for name, adapter in adapters.items()}
    assert len({tuple(v) for v in expected.values()}) == len(ADAPTERS)  # the adapters really differ
    results: dict[int, list[int]] = {}
    kept: list = []
    plan = [(ADAPTERS[i % len(ADAPTERS)], KINDS[i % len(KINDS)]) for i in range(REQUESTS)]
    threads = [threading.Thread(target=_run, args=(engine, adapters[name], kind, i, results, kept), daemon=True)
               for i, (name, kind) in enumerate(plan)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [t for t in threads if t.is_alive()], "a request never completed"
    completed = {i: name for i, (name, kind) in enumerate(plan) if kind == "complete"}
    assert sorted(results) == sorted(completed)
    for i, name in completed.items():
        assert results[i] == expected[name], (i, name)
    return expected, adapters, kept


def _settled(engine) -> dict:
    """The engine's counters once every decode thread (the never-read-again ones too) has ended."""
    from tiny import wait_for

    return wait_for(lambda: (s := engine.stats())["busy"] == 0 and s, timeout=60, what="every slot to be freed")


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_storm_of_requests_leaves_every_slot_free(tiny_base, tiny_registry, slots):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=slots)
    expected, adapters, kept = _storm(engine, tiny_registry)
    stats = _settled(engine)
    assert stats == {"slots": slots, "free": slots, "busy": 0, "waiting": 0}
    # and the engine still answers each adapter exactly as before
    for name, adapter in adapters.items():
        assert list(engine.generate_ids(engine.tokenize(PROMPT), adapter, SETTINGS)) == expected[name]
    kept.clear()


def test_stream_answer_stops_the_decode_at_a_stop(tiny_base, tiny_registry):
    """A format stop ends the answer; the slot is free at once, not when the collector runs."""
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1)
    pieces = stream_text(engine, [{"role": "user", "content": "What grows well in sandy soil?"}], None, SETTINGS)
    next(pieces, None)
    pieces.close()
    assert _settled(engine)["free"] == 1


def test_a_request_cancelled_while_waiting_leaves_the_line(tiny_base):
    """With the only slot held by a decode that cannot go on, a waiting request that is closed
    leaves the line at once (it never takes the slot)."""
    from tiny import wait_for

    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=1)
    gate = threading.Event()
    for slot in engine._slots:  # whichever context the first request takes, its decode stops there
        slot.evaluate = lambda *args, _evaluate=slot.evaluate, **kwargs: (gate.wait(), _evaluate(*args, **kwargs))
    holder = engine.generate_ids(engine.tokenize(PROMPT), None, SETTINGS)
    wait_for(lambda: engine.stats()["busy"] == 1, timeout=30, what="the first request to take the slot")
    waiter = engine.generate_ids(engine.tokenize(PROMPT), None, SETTINGS)
    wait_for(lambda: engine.stats()["waiting"] == 1, timeout=30, what="the second request to wait")
    waiter.close()
    wait_for(lambda: engine.stats()["waiting"] == 0, timeout=30, what="the closed request to leave the line")
    assert engine.stats()["busy"] == 1  # it did not take the slot
    gate.set()
    assert len(list(holder)) == SETTINGS.max_tokens
    assert _settled(engine) == {"slots": 1, "free": 1, "busy": 0, "waiting": 0}


def test_close_ends_every_decode_and_turns_the_line_away(tiny_base):
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=2)  # two decode, two wait
    streams = [engine.generate_ids(engine.tokenize(PROMPT), None, GenerationSettings(max_tokens=2000)) for _ in range(4)]
    next(streams[0])
    engine.close(timeout=30)
    assert engine.stats()["busy"] == 0
    for stream in streams:  # each ends (short), none hangs
        list(stream)
    assert engine.stats() == {"slots": 1, "free": 1, "busy": 0, "waiting": 0}
