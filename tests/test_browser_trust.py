"""Checked answers in a real browser: a question the Q&A does not cover gets no made-up answer but
"Did you mean…" buttons; clicking one asks that checked question and shows the pair it agrees with."""

from __future__ import annotations

import pytest
from browser import ask, browser, choose_adapter, last_answer, running_app
from playwright.sync_api import expect
from qa_adapters import ORCHARD, publish_tiny_qa_adapter

from assistant.registry import Registry
from assistant.store import Store

pytestmark = pytest.mark.browser


def test_not_checked_question_offers_checked_ones_and_a_click_gets_the_checked_answer(tiny_base, tmp_path):
    data_dir = tmp_path / "data"
    publish_tiny_qa_adapter(Registry(tiny_base.sha256, data_dir), tiny_base, "orchard", ORCHARD, seed=5,
                            answer_policy="checked")
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir)) as url, browser() as b:
        page = b.new_page()
        page.goto(url)
        choose_adapter(page, "orchard (v1)")
        expect(page.locator("#adapter-card")).to_contain_text("Checked only")

        ask(page, "How much pesticide may I spray on Zorblat trees before picking?")
        withheld = last_answer(page, "orchard v1")
        assert "No checked answer" in withheld and "don't have a checked answer" in withheld
        first = page.locator("#suggestion-0")
        expect(first).to_be_visible()
        expect(page.locator("#suggestions-hint")).to_be_visible()
        suggestion = first.inner_text().strip()
        assert suggestion in {r["question"] for r in ORCHARD if r.get("split") != "test"}

        first.click()
        # The mark comes with the final answer only, so this waits for the new answer, not the withheld one.
        page.locator("#chatbot [data-testid='bot']").last.filter(has_text="checked against the Q&A").wait_for(
            timeout=120_000)
        checked = last_answer(page, "orchard v1")
        pair = next(r for r in ORCHARD if r["question"] == suggestion)
        assert "checked against the Q&A" in checked
        assert f"“{suggestion}” → “{pair['answer']}”" in checked  # the pair it was checked against, shown
        assert checked.startswith(pair["answer"]) or "in the Q&A's words" not in checked
        expect(page.locator("#suggestion-0")).to_be_hidden()  # a checked answer needs no suggestions
    recorded = Store.open(data_dir).open_questions("orchard")
    assert [q.question for q in recorded] == ["How much pesticide may I spray on Zorblat trees before picking?"]
