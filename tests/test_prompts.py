"""Prompt formats and the stop scanner."""

from __future__ import annotations

import pytest

from assistant.prompts import StopScanner, get_format


def test_qa_format_renders_history_as_previous_pairs():
    fmt = get_format("qa")
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris"}, {"role": "user", "content": " And Germany? "}]
    assert fmt.render(messages) == "Question: Capital of France?\nAnswer: Paris\n\nQuestion: And Germany?\nAnswer:"


def test_chat_format_uses_gemma_turns():
    fmt = get_format("gemma-chat")
    assert fmt.render([{"role": "user", "content": "hi"}]) == "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert fmt.training_pair("hi", "hello") == (fmt.render([{"role": "user", "content": "hi"}]), "hello<end_of_turn>")


def test_training_pair_ends_with_eos_in_qa():
    prompt, completion = get_format("qa").training_pair("Q?", " A. ")
    assert prompt == "Question: Q?\nAnswer:" and completion == " A.<eos>"


def test_grounding_facts_go_right_before_the_question_in_both_formats():
    history = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    ask = [*history, {"role": "user", "content": "Capital of Xylandia?", "facts": ["Crystalburg is the\ncapital.", ""]}]
    assert get_format("qa").render(ask) == ("Question: Hi?\nAnswer: Hello.\n\n"
                                            "Fact: Crystalburg is the capital.\n\nQuestion: Capital of Xylandia?\nAnswer:")
    assert get_format("gemma-chat").render(ask).endswith(
        "<start_of_turn>user\nFact: Crystalburg is the capital.\n\nCapital of Xylandia?<end_of_turn>\n<start_of_turn>model\n")
    assert get_format("qa").training_pair("Q?", "A.", ["A."])[0] == "Fact: A.\n\nQuestion: Q?\nAnswer:"


def test_render_needs_a_final_user_message():
    with pytest.raises(ValueError):
        get_format("qa").render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    with pytest.raises(ValueError, match="unknown prompt format"):
        get_format("alpaca")


def test_scanner_holds_back_a_possible_stop_prefix_then_releases_it():
    scanner = StopScanner(("<end_of_turn>",))
    assert scanner.feed("Hello <end") == "Hello "
    assert scanner.feed("Hello <endless") == "<endless"
    assert scanner.feed("Hello <endless story<end_of_turn>junk") == " story"
    assert scanner.stopped


def test_scanner_waits_for_incomplete_utf8():
    scanner = StopScanner(("\n",))
    assert scanner.feed("caf\ufffd") == "caf"
    assert scanner.feed("café") == "é"
