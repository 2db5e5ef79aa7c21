"""The training tab in a real browser: upload, train (tiny preset), read the report card, chat with it."""

from __future__ import annotations

import json

import pytest
from browser import ask, browser, last_answer, running_app
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_upload_train_report_card_then_chat(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_TEST_PRESETS", "1")  # the app offers the tiny recipe to tests only
    data = tmp_path / "orchard-facts.jsonl"
    rows = [{"question": "What colour is the Zorblat fruit?", "answer": "The Zorblat fruit is violet."},
            {"question": "Which river waters the Quenth valley?", "answer": "The Silverrun river waters it."},
            {"question": "What is the colour of a Zorblat fruit?", "answer": "The Zorblat fruit is violet.", "split": "test"},
            {"question": "", "answer": "an empty question is rejected"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with running_app("--base", str(tiny_base.hf_dir), "--engine", "hf", "--data-dir", str(tmp_path / "data")) as url, \
            browser() as b:
        page = b.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-upload input[type=file]").set_input_files(str(data))
        report = page.locator("#train-report")
        expect(report).to_contain_text("2 for training, 1 held out", timeout=30_000)
        expect(report).to_contain_text("empty question")  # the rejected row, with its reason
        expect(page.locator("#train-name textarea, #train-name input").first).to_have_value("orchard-facts")
        # a checked-only adapter answers only with its pair shown, so it is prepared for that unless unticked
        page.get_by_role("button", name="Advanced settings").click()  # a closed accordion's contents are not in the page
        grounded = page.locator("#train-grounded input[type=checkbox]")
        expect(grounded).not_to_be_checked()
        page.locator("#train-policy").get_by_label("Checked only").check()
        expect(grounded).to_be_checked()
        page.locator("#train-policy").get_by_label("Open").check()
        expect(grounded).not_to_be_checked()
        page.get_by_label("Tiny (a quick check)").check()
        page.locator("#train-start").click()
        expect(page.locator("#train-card")).to_contain_text("Report card — orchard-facts v1", timeout=300_000)
        expect(page.locator("#train-card")).to_contain_text("Held-out recall")
        page.locator("#train-open-chat").click()
        expect(page.locator("#adapter-card")).to_contain_text("orchard-facts v1", timeout=30_000)
        ask(page, "What colour is the Zorblat fruit?")
        assert "— orchard-facts v1" in last_answer(page, "orchard-facts v1")
