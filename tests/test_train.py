"""The training recipe on the tiny Gemma 3: it learns, writes everything, cancels cleanly, replays."""

from __future__ import annotations

import threading

import pytest
from tiny import FACTS

from assistant.data import load_qa_file
from assistant.registry import Registry
from assistant.training import config, recipe, replay, steps
from assistant.training.progress import TrainingCancelled


def _train(tiny_base, tmp_path, fact_file, evaluator=None, cancel=None, on_progress=None, **overrides):
    registry = Registry(tiny_base.sha256, tmp_path / "data")
    cfg = config.preset("tiny", **overrides)
    result = recipe.train(cfg, tiny_base, registry, load_qa_file(fact_file), "facts", evaluator=evaluator,
                          cancel=cancel, on_progress=on_progress, data_bytes=fact_file.read_bytes())
    return registry, result


def test_loss_falls_and_everything_is_published(tiny_base, tmp_path, fact_file, tiny_llamacpp):
    events = []
    registry, result = _train(tiny_base, tmp_path, fact_file, evaluator=tiny_llamacpp, on_progress=events.append,
                              epochs=20, learning_rate=2e-2, replay_per_step=0)
    assert result.losses[-1] < result.losses[0] * 0.8
    adapter = registry.get("facts")
    assert adapter.version == 1 and adapter.usable
    files = {p.name for p in adapter.path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "adapter.gguf", "manifest.json", "dataset.jsonl"} <= files
    assert (adapter.path / "dataset.jsonl").read_bytes() == fact_file.read_bytes()  # kept byte for byte
    m = adapter.manifest
    assert m["dataset"]["sha256"] == load_qa_file(fact_file).sha256 and m["dataset"]["train_pairs"] == 3
    assert m["training"]["preset"] == "tiny" and m["training"]["rank"] == 4 and m["training"]["steps"] == result.steps
    card = m["report_card"]
    assert set(card["after"]) >= {"recall", "heldout_recall"} and card["counts"] == {"train": 3, "heldout": 1, "probes": 40} | (
        {"probes_known_by_base": card["counts"]["probes_known_by_base"]} if "probes_known_by_base" in card["counts"] else {})
    phases = [e.phase for e in events]
    assert phases[0] == "prepare" and "train" in phases and phases[-1] == "done"
    train_events = [e for e in events if e.phase == "train"]
    assert train_events[-1].step == result.steps and all(e.eta_s is not None and e.loss is not None for e in train_events)
    assert not any(registry.staging_dir.iterdir())


def test_cancel_publishes_nothing(tiny_base, tmp_path, fact_file):
    cancel = threading.Event()

    def stop_at_step_two(event):
        if event.phase == "train" and event.step == 2:
            cancel.set()

    with pytest.raises(TrainingCancelled):
        _train(tiny_base, tmp_path, fact_file, cancel=cancel, on_progress=stop_at_step_two, epochs=5, replay_per_step=0)
    registry = Registry(tiny_base.sha256, tmp_path / "data")
    assert registry.list() == []
    assert not registry.staging_dir.exists() or not any(registry.staging_dir.iterdir())


def test_replay_answers_are_mixed_into_every_step(tiny_base, tmp_path, fact_file, monkeypatch):
    seen = []
    real_step = steps.forward_backward

    def spy(model, batch, cfg, device):
        seen.append(len(batch))
        return real_step(model, batch, cfg, device)

    monkeypatch.setattr(steps, "forward_backward", spy)
    # The bare base's answers to the 219 replay questions cost minutes on the tiny model without an
    # engine; which answers ride along does not matter here, only that they do.
    monkeypatch.setattr(replay, "base_answers", lambda *_: [("What do bees make?", "Honey"),
                                                             ("Who wrote Hamlet?", "Shakespeare"),
                                                             ("What is H2O?", "Water")])
    grounded = []
    real_encode = steps.encode

    def encode_spy(tokenizer, fmt, question, answer, answer_only, facts=None):
        if facts:
            grounded.append((question, answer, facts))
        return real_encode(tokenizer, fmt, question, answer, answer_only, facts)

    monkeypatch.setattr(steps, "encode", encode_spy)
    _train(tiny_base, tmp_path, fact_file, epochs=2, replay_per_step=2, swap_replay=1, swaps_per_step=2,
           grounded_per_step=2)
    # each step: the 3 facts, 2 general questions, 2 place-swapped copies of training questions and
    # 2 grounded copies of training pairs (training/grounded.py)
    assert seen and all(n == len(FACTS) + 2 + 2 + 2 for n in seen)
    answers = {a for _, a in FACTS}
    for question, answer in FACTS:
        shown = [(a, facts) for q, a, facts in grounded if q == question]
        assert all(a == answer for a, _ in shown)  # the target is always the pair's own answer
        assert [answer] in [facts for _, facts in shown]  # alone, as a checked chat shows it
        assert any(answer in facts and len(facts) == 3 for _, facts in shown)  # among two distractors
        assert all(set(facts) <= answers for _, facts in shown)  # distractors are other training facts


def test_swapped_questions_name_another_place():
    questions = ["What colour is the Zorblat fruit?", "Which river waters the Quenth valley?", "How tall is grass?"]
    swapped = replay.swap_answers(questions, config.preset("tiny", swap_replay=2), lambda q: f"base says: {q}",
                                  threading.Event())
    asked = [q for q, _ in swapped]
    assert len(asked) == 4 and not any("Zorblat" in q or "Quenth" in q for q in asked)
    assert all(any(place in q for place in replay.SWAP_PLACES) for q in asked)
    assert all(a == f"base says: {q}" for q, a in swapped)


def test_same_seed_same_losses(tiny_base, tmp_path, fact_file):
    _, first = _train(tiny_base, tmp_path / "a", fact_file, epochs=3, replay_per_step=0, early_stop=False)
    _, second = _train(tiny_base, tmp_path / "b", fact_file, epochs=3, replay_per_step=0, early_stop=False)
    assert first.losses == second.losses


def test_packed_batch_equals_separate_examples(tiny_base):
    """Packing must not let one example attend to another (called as steps.forward_backward calls it:
    without a KV cache, since transformers only honours restarting position ids when there is none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base.hf_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_base.hf_dir)
    a, b = (tok(t)["input_ids"] for t in ("Question: one?\nAnswer: yes", "Question: a longer second one?\nAnswer: no"))
    with torch.no_grad():
        positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
        packed = model(input_ids=torch.tensor([a + b]), position_ids=positions, use_cache=False).logits[0]
        leaky = model(input_ids=torch.tensor([a + b]), position_ids=positions, use_cache=True).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([x])).logits[0] for x in (a, b)])
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-4)  # the trap this guards against


def test_conflicting_answers_refuse_to_train_unless_allowed(tiny_base, tmp_path):
    path = tmp_path / "conflict.csv"
    path.write_text("question,answer\nWhat is X?,Red\nWhat is X?,Blue\nWhat is Y?,Green\n")
    with pytest.raises(ValueError, match="cannot train"):
        _train(tiny_base, tmp_path, path)
    registry, result = _train(tiny_base, tmp_path, path, allow_conflicts=True, epochs=1, replay_per_step=0)
    assert registry.get("facts").usable


@pytest.mark.parametrize("bad", [{"rank": 0}, {"learning_rate": 0}, {"epochs": 0}, {"target_modules": ("lm_head",)},
                                 {"precision": "int3"}, {"dropout": 1.0}, {"augment": -1}, {"augment": 17},
                                 {"augment_by": "gpt"}])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="invalid training config"):
        config.preset("fast", **bad)
    with pytest.raises(ValueError, match="unknown preset"):
        config.preset("turbo")


def test_train_tab_turns_advanced_settings_into_fast_overrides(tmp_path):
    from types import SimpleNamespace

    from ui.train import start

    started = []

    class Jobs:
        def start(self, path, name, preset, overrides, description="", answer_policy=None):
            started.append((preset, overrides))
            return SimpleNamespace(name=name)

    upload = tmp_path / "qa.jsonl"
    upload.write_text('{"question": "q?", "answer": "a."}\n')
    for preset_name, grounded in [("fast", True), ("fast", False), ("seed", True)]:
        status = start(Jobs(), tmp_path / "uploads", str(upload), "orchard", preset_name, "", 8, 1e-3, 3, 4, False, grounded)
        assert status == "Started training **orchard**."
    (_, grounded_on), (_, grounded_off), (_, seed) = started
    # ticked, the recipe agriculture ships with: rank 4 on the MLP layers, whatever the rank slider says
    assert grounded_on == {"allow_conflicts": False, "rank": 4, "alpha": 32, "learning_rate": 1e-3, "epochs": 3,
                           "replay_per_step": 4, "grounded_per_step": config.GROUNDED_PER_STEP,
                           "target_modules": ("gate_proj", "up_proj", "down_proj")}
    assert config.SHIPPED_RECIPES["agriculture"].items() >= config.GROUNDED_RECIPE.items()
    assert grounded_off["grounded_per_step"] == 0
    assert seed == {"allow_conflicts": False}  # the proof of concept runs exactly as it was
    config.preset("fast", **grounded_on)  # every override is a real setting


def test_train_tab_turns_learn_new_wordings_into_augment(tmp_path):
    from types import SimpleNamespace

    from ui.train import start

    started = []

    class Jobs:
        def start(self, path, name, preset, overrides, description="", answer_policy=None):
            started.append(overrides)
            return SimpleNamespace(name=name)

    for wordings in (True, False):
        upload = tmp_path / f"qa-{wordings}.jsonl"
        upload.write_text('{"question": "q?", "answer": "a."}\n')
        start(Jobs(), tmp_path / "uploads", str(upload), "orchard", "fast", "", 8, 1e-3, 3, 4, False, False, "open",
              wordings)
    on, off = started
    assert on["augment"] == (config.PRESETS["fast"].augment or config.AUGMENT_FORMS) and off["augment"] == 0
    config.preset("fast", **on)


def test_train_tab_offers_test_presets_only_when_asked(monkeypatch):
    """The Train tab's recipes are the user's: the tiny preset is for the test suite (browser tests
    set ASSISTANT_TEST_PRESETS=1; the CLI's --preset tiny needs nothing)."""
    from ui import train as tab

    monkeypatch.delenv(tab.SHOW_TEST_PRESETS, raising=False)
    offered = [name for _, name in tab.preset_choices()]
    assert offered == ["fast", "seed"] and not set(offered) & config.TEST_PRESETS
    assert set(offered) | config.TEST_PRESETS == set(config.PRESETS)  # a new preset needs its line in RECIPES
    assert all(" — " in label and " min" in label for label, _ in tab.preset_choices())  # what for, how long
    monkeypatch.setenv(tab.SHOW_TEST_PRESETS, "1")
    assert [name for _, name in tab.preset_choices()] == ["fast", "seed", "tiny"]
    assert "Tiny (a quick check)" in dict((n, lbl) for lbl, n in tab.preset_choices())["tiny"]
