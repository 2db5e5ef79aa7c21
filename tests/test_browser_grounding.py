"""Grounding and the automatic adapter in a real browser: turn grounding on, see the sources."""

from __future__ import annotations

import pytest
from browser import ask, browser, choose_adapter, last_answer, running_app
from playwright.sync_api import expect
from qa_adapters import ORCHARD, publish_tiny_qa_adapter

from assistant.registry import Registry

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def qa_data_dir(tmp_path_factory, tiny_base):
    data_dir = tmp_path_factory.mktemp("grounding-data")
    publish_tiny_qa_adapter(Registry(tiny_base.sha256, data_dir), tiny_base, "orchard", ORCHARD, seed=5)
    return data_dir


def test_grounding_toggle_shows_sources_and_auto_names_its_choice(tiny_base, qa_data_dir):
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(qa_data_dir)) as url, browser() as b:
        page = b.new_page()
        page.goto(url)
        expect(page.locator("#knowledge-note")).not_to_contain_text("off")  # this app owns the index
        choose_adapter(page, "orchard (v1)")
        page.locator("#ground-toggle input").check()

        ask(page, "Which colour does a Zorblat have?")
        answer = last_answer(page, "orchard v1")
        assert "grounded in" in answer and "Sources:" in answer
        assert "“What colour is the Zorblat fruit?” (orchard, 0." in answer  # the matched question and its similarity

        ask(page, "How do I bake sourdough bread?")
        plain = last_answer(page, "orchard v1 · not grounded")
        assert "nothing close enough" in plain and "answered plainly" in plain and "Sources:" not in plain

        choose_adapter(page, "Automatic (nearest adapter's Q&A)")
        expect(page.locator("#adapter-card")).to_contain_text("orchard@v1 (4 pairs)")
        page.locator("#ground-toggle input").uncheck()
        ask(page, "When are Zorblats harvested?")
        routed = last_answer(page, "auto → orchard v1")
        assert "(nearest: 'When is the Zorblat harvest?', 0." in routed and "Sources:" not in routed


def test_a_second_app_on_the_same_data_runs_without_grounding_and_says_why(tiny_base, qa_data_dir):
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(qa_data_dir)) as first, \
            running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(qa_data_dir)) as second, browser() as b:
        owner, other = b.new_page(), b.new_page()
        owner.goto(first)
        other.goto(second)
        expect(other.locator("#knowledge-note")).to_contain_text("owned by another app process")
        expect(owner.locator("#knowledge-note")).not_to_contain_text("owned")
        other.locator("#ground-toggle input").check()
        ask(other, "Which colour does a Zorblat have?")
        answer = last_answer(other, "base model · not grounded")
        assert "owned by another app process" in answer
