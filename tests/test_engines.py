"""Both engines on the tiny Gemma 3: same greedy tokens, adapters per request, one base load."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answer import stream_text
from assistant.engines import GenerationSettings

PROMPTS = ["Question: What is the capital of France?\nAnswer:", "Hello there, farmer", "Soil pH 6.5 means"]
GREEDY = GenerationSettings(max_tokens=10)


@pytest.mark.parametrize("adapter_name", [None, "alpha", "beta"])
def test_llamacpp_matches_peft_greedy_tokens(tiny_hf, tiny_llamacpp, tiny_registry, adapter_name):
    adapter = tiny_registry.get(adapter_name) if adapter_name else None
    for prompt in PROMPTS:
        expected = list(tiny_hf.generate_ids(tiny_hf.tokenize(prompt), adapter, GREEDY))
        assert list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(prompt), adapter, GREEDY)) == expected, prompt


def _llama_logits(engine, prompt, adapter):
    return engine.next_token_logits(engine.tokenize(prompt), adapter)


def _hf_logits(engine, prompt, adapter):
    import torch

    ids = torch.tensor([engine.tokenize(prompt)])
    with torch.inference_mode(), engine._adapter_context(adapter):
        model = engine.peft if engine.peft is not None else engine.model
        return model(input_ids=ids).logits[0, -1].numpy()


@pytest.mark.parametrize("adapter_name", [None, "alpha", "beta"])
def test_gguf_conversion_preserves_logits(tiny_hf, tiny_llamacpp, tiny_registry, adapter_name):
    """Stronger than matching argmaxes: the whole next-token distribution agrees."""
    adapter = tiny_registry.get(adapter_name) if adapter_name else None
    for prompt in PROMPTS:
        ours, ref = _llama_logits(tiny_llamacpp, prompt, adapter), _hf_logits(tiny_hf, prompt, adapter)
        assert np.corrcoef(ours, ref)[0, 1] > 0.9999
        assert np.max(np.abs(ours - ref)) < 1e-2 * max(1.0, np.max(np.abs(ref)))


def test_adapters_change_the_answer(tiny_llamacpp, tiny_registry):
    outputs = {name: list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(PROMPTS[1]), tiny_registry.get(name) if name else None, GREEDY))
               for name in (None, "alpha", "beta")}
    assert len({tuple(v) for v in outputs.values()}) == 3


def test_switching_never_reloads_the_base_and_requests_are_isolated(tiny_llamacpp, tiny_registry):
    alpha, beta = tiny_registry.get("alpha"), tiny_registry.get("beta")
    model_ptr = tiny_llamacpp.llm.model
    fresh = {a and a.key: list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(PROMPTS[0]), a, GREEDY)) for a in (None, alpha, beta)}
    # Interleave like two browser tabs on different adapters; each must get its own answer.
    for adapter in (alpha, beta, None, beta, alpha, alpha, None):
        assert list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(PROMPTS[0]), adapter, GREEDY)) == fresh[adapter and adapter.key]
    assert tiny_llamacpp.llm.model == model_ptr
    assert tiny_llamacpp.base_loads == 1


def test_unload_then_reload_adapter(tiny_llamacpp, tiny_registry):
    alpha = tiny_registry.get("alpha")
    before = list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(PROMPTS[2]), alpha, GREEDY))
    tiny_llamacpp.unload_adapter(alpha.key)
    assert alpha.key not in tiny_llamacpp._adapters
    assert list(tiny_llamacpp.generate_ids(tiny_llamacpp.tokenize(PROMPTS[2]), alpha, GREEDY)) == before


def test_hf_engine_unload_adapter(tiny_hf, tiny_registry):
    beta = tiny_registry.get("beta")
    before = list(tiny_hf.generate_ids(tiny_hf.tokenize(PROMPTS[2]), beta, GREEDY))
    tiny_hf.unload_adapter(beta.key)
    assert beta.key not in tiny_hf._loaded
    assert list(tiny_hf.generate_ids(tiny_hf.tokenize(PROMPTS[2]), beta, GREEDY)) == before


def test_sampling_is_reproducible_under_a_seed(tiny_llamacpp, tiny_hf):
    hot = GenerationSettings(max_tokens=8, temperature=1.5, top_k=0, top_p=1.0, seed=7)
    for engine in (tiny_llamacpp, tiny_hf):
        first = list(engine.generate_ids(engine.tokenize(PROMPTS[1]), None, hot))
        assert list(engine.generate_ids(engine.tokenize(PROMPTS[1]), None, hot)) == first


def test_max_tokens_is_respected(tiny_llamacpp, tiny_hf):
    for engine in (tiny_llamacpp, tiny_hf):
        assert len(list(engine.generate_ids(engine.tokenize(PROMPTS[0]), None, GenerationSettings(max_tokens=3)))) == 3


class ScriptedEngine:
    """Plays back fixed token ids; ids map to text pieces, so stop handling can be tested exactly."""

    def __init__(self, pieces, prompt_format="qa"):
        from assistant.prompts import get_format

        self.pieces, self.prompt_format, self.prompts = pieces, get_format(prompt_format), []

    def tokenize(self, text):
        self.prompts.append(text)
        return [2] * len(text.split())

    def generate_ids(self, prompt_ids, adapter, settings):
        yield from range(10, 10 + len(self.pieces))

    def detokenize(self, ids):
        return "".join(self.pieces[i - 10] if i >= 10 else "" for i in ids)


def test_stream_stops_at_newline_and_strips_the_format_space():
    engine = ScriptedEngine([" Par", "is", "\n", "Question", ":"])
    assert "".join(stream_text(engine, [{"role": "user", "content": "Capital of France?"}], None, GREEDY)) == "Paris"
    assert engine.prompts == ["Question: Capital of France?\nAnswer:"]


def test_stream_stops_at_end_token_in_chat_format():
    engine = ScriptedEngine(["Hi", " there", "<end_of", "_turn>", "more"], prompt_format="gemma-chat")
    pieces = list(stream_text(engine, [{"role": "user", "content": "hello"}], None, GREEDY))
    assert "".join(pieces) == "Hi there"


def test_settings_validation():
    with pytest.raises(ValueError, match="max_tokens"):
        GenerationSettings(max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)


def test_two_chats_decode_at_once_each_with_its_own_adapter(tiny_base, tiny_registry):
    """Two slots on one model: read token by token in turn, each stream equals its serial answer."""
    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=2)
    alpha, beta = tiny_registry.get("alpha"), tiny_registry.get("beta")
    serial = {a.key: list(engine.generate_ids(engine.tokenize(PROMPTS[1]), a, GREEDY)) for a in (alpha, beta)}
    streams = {a.key: engine.generate_ids(engine.tokenize(PROMPTS[1]), a, GREEDY) for a in (alpha, beta)}
    got = {key: [] for key in streams}
    for _ in range(GREEDY.max_tokens):
        for key, stream in streams.items():
            got[key].append(next(stream))
    assert got == serial
    assert engine.base_loads == 1 and engine.slots == 2


def test_requests_beyond_the_slots_wait_their_turn(tiny_base, tiny_registry):
    """One lane of one chat, held by a decode stopped at a gate: the next request waits, then gets
    its answer."""
    import threading

    from tiny import wait_for

    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=1, batch=1)
    expected = list(engine.generate_ids(engine.tokenize(PROMPTS[0]), None, GREEDY))
    gate = threading.Event()
    for slot in engine._slots:  # whichever context the first request takes
        slot.evaluate = lambda *args, _evaluate=slot.evaluate, **kwargs: (gate.wait(), _evaluate(*args, **kwargs))
    holder = engine.generate_ids(engine.tokenize(PROMPTS[0]), None, GREEDY)
    wait_for(lambda: engine.stats()["busy"] == 1, timeout=30, what="the first request to take the slot")
    waiter = engine.generate_ids(engine.tokenize(PROMPTS[0]), None, GREEDY)
    wait_for(lambda: engine.stats()["waiting"] == 1, timeout=30, what="the second request to wait")
    gate.set()
    assert list(holder) == expected
    assert list(waiter) == expected  # it got the slot once the first decode ended
    assert engine.stats()["waiting"] == 0


def test_private_llama_cpp_apis_are_used_only_with_the_pinned_version():
    from pathlib import Path

    from assistant.engines import EngineError, llama_private

    llama_private.check_version()  # what `make setup` installed
    with pytest.raises(EngineError, match=f"0.3.99 is installed.*{llama_private.PINNED_VERSION}.*make setup"):
        llama_private.check_version("0.3.99")
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert f"llama-cpp-python=={llama_private.PINNED_VERSION}" in makefile  # one pin, two places: kept equal
    sources = Path(__file__).parent.parent / "assistant"
    users = sorted(str(p.relative_to(sources)) for p in sources.rglob("*.py") if "llama_cpp._internals" in p.read_text())
    assert users == ["engines/llama_private.py"]


def test_a_request_takes_a_context_that_already_has_its_adapter(tiny_base, tiny_registry):
    """Two decodes at once, three contexts: going round the bare base and two adapters one request
    at a time switches no context's adapter once each has been used (a switch costs llama.cpp a
    graph reservation), and every answer is still its own adapter's."""
    from assistant.engines.llamacpp import SPARE_CONTEXTS, LlamaCppEngine

    engine = LlamaCppEngine(tiny_base.gguf_path, slots=2)
    adapters = [None, tiny_registry.get("alpha"), tiny_registry.get("beta")]
    assert SPARE_CONTEXTS >= 1 and engine.stats() == {"slots": 2, "free": 2, "busy": 0, "waiting": 0}
    ids = engine.tokenize(PROMPTS[0])
    first = {a and a.key: list(engine.generate_ids(ids, a, GREEDY)) for a in adapters}
    switches = engine.switches
    for adapter in adapters * 3:
        assert list(engine.generate_ids(ids, adapter, GREEDY)) == first[adapter and adapter.key]
    assert engine.switches == switches
    assert engine.stats()["free"] == 2
