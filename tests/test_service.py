"""The answer service: one path for every front end, its structured answer, and what it refuses."""

from __future__ import annotations

import pytest

from assistant.answer import AnswerRequestError, PromptTooLong, stream_text
from assistant.engines import GenerationSettings
from assistant.registry import UnknownAdapter
from assistant.service import Assistant

SHORT = GenerationSettings(max_tokens=12)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture()
def assistant(tiny_base, tiny_llamacpp, tiny_registry):
    return Assistant(tiny_base, tiny_llamacpp, tiny_registry)


def test_an_answer_carries_its_adapter_version_label_and_usage(assistant, tiny_llamacpp, tiny_registry):
    answer = assistant.answer(QUESTION, "beta", SHORT)
    text = "".join(answer)
    beta = tiny_registry.get("beta")
    assert text == "".join(stream_text(tiny_llamacpp, QUESTION, beta, SHORT)).strip() == answer.text
    assert (answer.adapter, answer.version, answer.chosen_by) == ("beta", beta.version, "request")
    assert answer.label == f"beta v{beta.version} · not checked — may be wrong" and answer.sources == []
    assert (answer.policy, answer.checked, answer.withheld) == ("open", False, False)
    assert answer.finish_reason in ("stop", "length")
    usage = answer.usage()
    assert usage["prompt_tokens"] == len(tiny_llamacpp.tokenize(answer.prompt)) > 0
    assert 0 < usage["completion_tokens"] <= SHORT.max_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_the_bare_base_and_its_spellings(assistant):
    for name in (None, "", "none", "base", " Base "):
        answer = assistant.answer(QUESTION, name, SHORT)
        assert (answer.adapter, answer.version) == (None, None)
        answer.read()
        assert answer.label == "base model · not checked — may be wrong"
    assert assistant.ask("What is the capital of France?", None, SHORT) == assistant.answer(QUESTION, "none", SHORT).read()


class CountingEngine:
    """Emits `max_tokens` ids of one word each, or stops with <eos> after `stop_after` of them."""

    def __init__(self, stop_after=None):
        from assistant.prompts import get_format

        self.prompt_format, self.stop_after = get_format("qa"), stop_after

    def tokenize(self, text):
        return list(range(len(text.split())))

    def detokenize(self, ids):
        return "".join(" w" for _ in ids)

    def generate_ids(self, prompt, adapter, settings):
        for i in range(settings.max_tokens):
            yield 1 if i == self.stop_after else 10 + i


def test_finish_reason_and_token_counts(tiny_base, tiny_registry):
    ended = Assistant(tiny_base, CountingEngine(), tiny_registry).answer(QUESTION, None, GenerationSettings(max_tokens=5))
    assert ended.read() == "w w w w w" and (ended.finish_reason, ended.completion_tokens) == ("length", 5)
    assert ended.prompt_tokens == len("Question: What is the capital of France?\nAnswer:".split())
    stopped = Assistant(tiny_base, CountingEngine(stop_after=2), tiny_registry).answer(QUESTION, None,
                                                                                     GenerationSettings(max_tokens=5))
    assert stopped.read() == "w w" and (stopped.finish_reason, stopped.completion_tokens) == ("stop", 2)


def test_a_caller_stop_string_cuts_the_answer(assistant):
    full = assistant.answer(QUESTION, "alpha", GenerationSettings(max_tokens=24)).read()
    assert len(full) >= 2, full
    cut = full[len(full) // 2:][:2]  # a piece from the middle of the answer
    stopped = assistant.answer(QUESTION, "alpha", GenerationSettings(max_tokens=24), stop=(cut,))
    text = stopped.read()
    assert text == full[:full.index(cut)].strip() and stopped.finish_reason == "stop"


def test_auto_without_an_index_says_so_and_answers_with_the_base(assistant):
    answer = assistant.answer(QUESTION, "auto", SHORT, ground=True)
    answer.read()
    assert answer.adapter is None and answer.chosen_by == "auto"
    assert "no routing" in answer.route_reason and "not grounded" in answer.label


@pytest.mark.parametrize("messages, field", [
    ([], "messages"),
    ("hello", "messages"),
    ([{"role": "user", "content": "   "}], "messages"),
    ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
    ([{"role": "user", "content": ["a", "list"]}], "messages[0].content"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "messages"),
    (["not a message"], "messages[0]"),
])
def test_bad_conversations_are_refused_naming_the_part(assistant, messages, field):
    with pytest.raises(AnswerRequestError) as caught:
        assistant.answer(messages, None, SHORT)
    assert caught.value.field == field and str(caught.value)


def test_unknown_adapter_and_too_long_are_refused_before_decoding(assistant, tiny_llamacpp):
    with pytest.raises(UnknownAdapter):
        assistant.answer(QUESTION, "gamma", SHORT)
    long = [{"role": "user", "content": "word " * (tiny_llamacpp.n_ctx() + 10)}]
    with pytest.raises(PromptTooLong, match="too long"):
        assistant.answer(long, None, SHORT)
    assert tiny_llamacpp.stats()["busy"] == 0


def test_closing_an_answer_mid_stream_frees_its_slot(assistant, tiny_llamacpp):
    answer = assistant.answer(QUESTION, "alpha", GenerationSettings(max_tokens=2000))
    stream = iter(answer)
    next(stream, None)
    answer.close()
    stats = tiny_llamacpp.stats()
    assert stats["busy"] == 0 and stats["free"] == stats["slots"]


def test_cancelling_from_another_thread_takes_a_waiting_request_out_of_the_line(tiny_base, tiny_registry):
    import threading

    from tiny import wait_for

    from assistant.engines import create_engine

    engine = create_engine("llamacpp", tiny_base, slots=1)
    assistant = Assistant(tiny_base, engine, tiny_registry)
    try:
        holder = assistant.answer(QUESTION, "alpha", GenerationSettings(max_tokens=2000))
        stream = iter(holder)
        next(stream, None)  # decoding: it holds the only slot
        waiter = assistant.answer(QUESTION, "beta", SHORT)
        got = []
        reader = threading.Thread(target=lambda: got.extend(waiter))
        reader.start()
        wait_for(lambda: engine.stats()["waiting"] == 1, 30, "the second request to wait for the slot")
        waiter.cancel()  # from this thread, while the reader is blocked waiting for a slot
        reader.join(timeout=10)
        assert not reader.is_alive() and got == [] and engine.stats()["waiting"] == 0
        assert engine.stats()["busy"] == 1  # the holder decodes on
        holder.close()
        assert engine.stats() == {"slots": 1, "free": 1, "busy": 0, "waiting": 0}
    finally:
        engine.close()
