"""Question forms written by the base model (assistant.training.base_forms): a try is kept only when
it asks for the pair's own fact, only training rows are ever shown to the base, and the same seed
gives the same forms."""

from __future__ import annotations

import json

import pytest

from assistant.data import read_qa_bytes
from assistant.data.report import Record
from assistant.training import base_forms

MAIZE = Record("What is the minimum soil temperature for maize seed to germinate reliably?",
               "Maize seed needs a soil temperature of at least about 10°C to germinate reliably; colder soil causes "
               "slow, uneven emergence.", 1, "train", ["10°C"])
STAGE = Record("At which growth stage is maize most sensitive to drought?",
               "Maize is most sensitive to drought around tasselling and silking.", 2)
SAHEL = Record("In the Sahel, which staple cereal is the most drought-tolerant?",
               "In the Sahel, pearl millet is the most drought-tolerant staple cereal.", 3)

# (pair, what the 270M base wrote, kept?) -- the tries are real ones, from the embedded base
TRIES = [
    (MAIZE, "What soil temperature should be used for maize seed to germinate reliably?", True),
    (MAIZE, "What does maize seed need to germinate reliably?", True),
    (MAIZE, "What soil temperature in the winter is ideal for seed germination?", False),  # "winter" is new
    (MAIZE, "Does this temperature of 100ºC range in maize seeds?", False),  # a number the pair never says
    (MAIZE, "Why is soil temperature a good indicator of moisture in the seed?", False),  # another question
    (MAIZE, "What is the minimum soil temperature for maize seed to germinate reliably?", False),  # the same one
    (STAGE, "Under which growth stage is maize most sensitive to drought?", True),
    (STAGE, "Where is maize most sensitive to drought?", False),  # "where" asks for a place, not a stage
    (STAGE, "What age can maize be grown at?", False),  # drought is gone
    (STAGE, "What colour maize is most sensitive to drought?", False),  # colour: new
    (STAGE, "Is maize most sensitive to drought at tasselling?", False),  # a yes/no question
    (STAGE, "What are the stages of maize?Question: How long is the grain in the field?", False),  # runs on
    (STAGE, "stage maize drought", False),  # not a question
    (SAHEL, "In the Sahel, what cereal is the most drought-tolerant?", True),
    # the same question in new words ("copes best"): dropped too, since new words are how a try
    # asks something else ("colour" above), and a lost form costs less than a wrong one
    (SAHEL, "In the Sahel, what cereal copes best with drought?", False),
    (SAHEL, "Which staple cereal is the most drought-tolerant in Mali?", False),  # the place changed
]


@pytest.mark.parametrize(("record", "text", "kept"), TRIES, ids=[t[:45] for _, t, _ in TRIES])
def test_a_try_is_kept_only_when_it_asks_for_the_same_fact(record, text, kept):
    assert base_forms.accepted(record, text) is kept


def test_kept_share_counts_known_synonyms_and_word_forms():
    assert base_forms.kept_share("Which crops sprout reliably?", "What crops germinate dependably?") == 1.0
    assert base_forms.kept_share("What is the minimum soil temperature?", "What is the lowest soil temperature?") == 1.0
    assert base_forms.kept_share("When does maize germinate?", "When does maize germination start?") == 1.0
    assert base_forms.kept_share("Which pest attacks sorghum?", "Which insect eats grass?") == 0.0


def _fake_base(shown: list[str]):
    """A completer that rewords a question three ways, one a seed, and records every prompt."""
    def complete(prompt: str, seed: int | None) -> str:
        shown.append(prompt)
        question = prompt.rsplit("Question: ", 1)[1].split("\n", 1)[0]
        subject = question.split(" ", 2)[2].rstrip("?")
        return [f"Tell me which {subject}?", f"Can you say what {subject}?", f"What {subject}?"][(seed or 0) % 3]

    return complete


def test_the_recipe_shows_the_base_training_rows_only_and_stores_what_it_kept(tiny_base, tmp_path, monkeypatch):
    from assistant.registry import Registry
    from assistant.training import augment, config, recipe

    shown = []
    monkeypatch.setattr(base_forms, "hf_completer", lambda *trainable: _fake_base(shown))
    rows = [{"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet."},
            {"question": "Which river waters the Quenth valley?", "answer": "The Silverrun river waters the Quenth valley."},
            {"question": "Whose colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet.", "split": "test"}]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    registry = Registry(tiny_base.sha256, tmp_path / "data")
    cfg = config.preset("tiny", augment=2, augment_by="base", epochs=1, replay_per_step=0)
    result = recipe.train(cfg, tiny_base, registry, read_qa_bytes(data, "orchard.jsonl"), "orchard", data_bytes=data)
    assert len(shown) == 2 * base_forms.TRIES
    asked = {p.rsplit("Question: ", 1)[1].split("\n", 1)[0] for p in shown}
    assert asked == {rows[0]["question"], rows[1]["question"]}  # never the held-out row
    stored = [json.loads(line) for line in (result.adapter.path / augment.FILE).read_text().splitlines()]
    # "Can you say ..." is a yes/no question and never kept; each fact gets its two other wordings
    assert sorted(r["question"] for r in stored) == ["Tell me which is the Zorblat fruit?",
                                                     "Tell me which waters the Quenth valley?",
                                                     "What is the Zorblat fruit?", "What waters the Quenth valley?"]
    assert all(r["rules"] == "base-model" and r["answer"] in {rows[0]["answer"], rows[1]["answer"]} for r in stored)


def test_the_engine_completer_is_one_line_and_the_same_for_a_seed(tiny_llamacpp):
    complete = base_forms.engine_completer(tiny_llamacpp)
    prompt = base_forms.PROMPT.format(question="What colour is the Zorblat fruit?")
    greedy, sampled = complete(prompt, None), complete(prompt, 1)
    assert "\n" not in greedy + sampled and greedy and sampled != greedy
    assert complete(prompt, None) == greedy and complete(prompt, 1) == sampled
    assert tiny_llamacpp.stats()["busy"] == 0  # a try cut at its line break gave its slot back


def test_a_cancelled_training_stops_asking_the_base():
    import threading

    cancel, shown = threading.Event(), []

    def complete(prompt, seed):
        cancel.set()
        return _fake_base(shown)(prompt, seed)

    assert base_forms.base_forms([MAIZE, STAGE], 2, complete, cancel=cancel) == []
    assert len(shown) == 1


def test_the_hf_completer_is_one_line_and_the_same_for_a_seed(tiny_base):
    """Where no engine is given, the model being trained writes them, its adapter off."""
    from assistant.training import config, recipe

    model, tokenizer, device = recipe._load_trainable(tiny_base, config.preset("tiny"))
    complete = base_forms.hf_completer(model, tokenizer, device)
    prompt = base_forms.PROMPT.format(question="What colour is the Zorblat fruit?")
    greedy, sampled = complete(prompt, None), complete(prompt, 1)
    assert "\n" not in greedy + sampled and greedy and sampled != greedy
    assert complete(prompt, None) == greedy and complete(prompt, 1) == sampled
