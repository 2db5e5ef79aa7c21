"""The bare base's greedy answers are kept between report cards, under a key of everything that
decides them; a changed prompt, engine or setting asks again; a bad cache file is ignored."""

from __future__ import annotations

from types import SimpleNamespace

from assistant.engines import GenerationSettings
from assistant.prompts import get_format
from assistant.scoring import Probe
from assistant.training.base_answers import BaseAnswers
from assistant.training.evaluate import EVAL_SETTINGS, report_card


def _base(tmp_path, sha="ab" * 32):
    return SimpleNamespace(sha256=sha, cache_dir=tmp_path / "cache")


class Engine(SimpleNamespace):
    pass


def test_answers_are_kept_per_prompt_engine_and_settings(tmp_path):
    asked = []

    def answer(question):
        asked.append(question)
        return f"answer to {question}"

    engine = Engine(prompt_format=get_format("qa"), precision="fp32", device="cpu")
    kept = BaseAnswers.for_base(_base(tmp_path))
    first = kept.answerer(engine, EVAL_SETTINGS, answer)
    assert [first("Capital of France?"), first("Capital of France?")] == ["answer to Capital of France?"] * 2
    kept.save()
    again = BaseAnswers.for_base(_base(tmp_path)).answerer(engine, EVAL_SETTINGS, answer)  # the next training
    assert again("Capital of France?") == "answer to Capital of France?" and asked == ["Capital of France?"]
    for other_engine, settings in ((Engine(prompt_format=get_format("gemma-chat"), precision="fp32", device="cpu"),
                                    EVAL_SETTINGS),
                                   (Engine(prompt_format=get_format("qa"), precision="bf16", device="cpu"), EVAL_SETTINGS),
                                   (engine, GenerationSettings(max_tokens=32, temperature=0.0))):
        BaseAnswers.for_base(_base(tmp_path)).answerer(other_engine, settings, answer)("Capital of France?")
    assert len(asked) == 4  # another prompt format, precision or setting: asked again
    other_base = BaseAnswers.for_base(_base(tmp_path, sha="cd" * 32)).answerer(engine, EVAL_SETTINGS, answer)
    other_base("Capital of France?")
    assert len(asked) == 5


def test_a_bad_or_unwritable_cache_costs_time_never_the_card(tmp_path):
    path = tmp_path / "cache" / "base-answers" / f"{'ab' * 32}.json"
    path.parent.mkdir(parents=True)
    for bad in ("{not json", '{"version": 99, "answers": {"k": "v"}}', '{"version": 1, "answers": ["x"]}'):
        path.write_text(bad)
        assert BaseAnswers.for_base(_base(tmp_path)).answers == {}
    assert BaseAnswers.for_base(SimpleNamespace(sha256=None, cache_dir=tmp_path)).path is None
    (tmp_path / "blocked").write_text("a file where the directory would go")
    blocked = BaseAnswers.for_base(SimpleNamespace(sha256="ab" * 32, cache_dir=tmp_path / "blocked"))
    blocked.answerer(Engine(prompt_format=get_format("qa")), EVAL_SETTINGS, lambda q: "x")("q?")
    blocked.save()  # no error


def test_the_report_card_asks_the_bare_base_once_across_trainings(tmp_path, tiny_llamacpp):
    base = _base(tmp_path)
    probes = [Probe("What is the capital of France?", "Paris", ["Paris"]), Probe("2 + 2?", "4", ["4"])]
    calls = []
    real = tiny_llamacpp.generate_ids

    def counted(prompt_ids, adapter, settings):
        calls.append(adapter)
        return real(prompt_ids, adapter, settings)

    tiny_llamacpp.generate_ids = counted
    try:
        cards = [report_card(tiny_llamacpp, None, probes[:1], [], probes, base_answers=BaseAnswers.for_base(base))
                 for _ in range(2)]
    finally:
        tiny_llamacpp.generate_ids = real
    assert len(calls) == 2  # two distinct questions, asked once over both cards (and "after", the base here too)
    assert cards[0] == cards[1]
