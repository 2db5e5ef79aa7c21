"""The feedback loop in a real browser on a phone-sized screen (390 px): a farmer asks, gets no
checked answer, gives a 👎 with a correction, reloads and finds the chat; a trainer finds the
question in "Questions to answer" and answers it, starting from the farmer's correction."""

from __future__ import annotations

import re

import pytest
from browser import ask, browser, choose_adapter, last_answer, running_app
from playwright.sync_api import expect
from qa_adapters import ORCHARD, publish_tiny_qa_adapter

from assistant import questions
from assistant.auth import add_user
from assistant.registry import Registry
from assistant.store import Store

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
QUESTION = "How much pesticide may I spray on Zorblat trees before picking?"
CORRECTION = "None in the last <b>21 days</b>: ask the extension officer."


def log_in(b, url, name, password):
    page = b.new_context(viewport=PHONE).new_page()
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#chatbot").wait_for(timeout=60_000)
    return page


def farmer_and_trainer(tmp_path):
    """A users file with the farmer amina and the trainer grace (the passwords are their roles')."""
    users = tmp_path / "users.json"
    add_user(users, "amina", "farmer", "farmer password")
    add_user(users, "grace", "trainer", "trainer password")
    return users


def dislike_last_answer(page) -> None:
    page.locator("#chatbot button[aria-label='Dislike']").last.click()
    expect(page.locator("#correction-row")).to_be_visible()


def send_correction(page, text: str) -> None:
    page.locator("#correction textarea").fill(text)
    page.locator("#correction-send").click()


def test_farmer_flags_an_answer_reloads_and_a_trainer_answers_it(tiny_base, tmp_path):
    data_dir = tmp_path / "data"
    publish_tiny_qa_adapter(Registry(tiny_base.sha256, data_dir), tiny_base, "orchard", ORCHARD, seed=5,
                            answer_policy="checked")
    users = farmer_and_trainer(tmp_path)
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir), "--auth", str(users)) as url, \
            browser() as b:
        farmer = log_in(b, url, "amina", "farmer password")
        choose_adapter(farmer, "orchard (v1)")
        ask(farmer, QUESTION)
        assert "No checked answer" in last_answer(farmer, "orchard v1")
        dislike_last_answer(farmer)
        send_correction(farmer, "x" * 100_000)
        expect(farmer.locator("#feedback-note")).to_contain_text("at most 4,000 are accepted")
        send_correction(farmer, CORRECTION)
        expect(farmer.locator("#feedback-note")).to_contain_text("your correction goes to the trainers")
        assert farmer.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing off-screen

        farmer.reload()
        expect(farmer.locator("#chatbot")).to_contain_text(QUESTION, timeout=30_000)
        expect(farmer.locator("#chatbot")).to_contain_text("No checked answer")
        expect(farmer.locator("#chatbot button[aria-label='Disliked']")).to_have_count(1)  # the 👎 as left
        expect(farmer.locator("#chat-list input")).to_have_value(re.compile("^How much pesticide"))
        expect(farmer.get_by_role("tab", name="Train")).to_be_hidden()  # farmers never see the queue

        trainer = log_in(b, url, "grace", "trainer password")
        trainer.get_by_role("tab", name="Train").click()
        item = trainer.locator("#queue-items label").filter(has_text="How much pesticide")
        expect(item).to_contain_text("1 asked")
        expect(item).to_contain_text("👎")
        item.click()
        expect(trainer.locator("#queue-detail")).to_contain_text("The conversation it came from")
        expect(trainer.locator("#queue-detail")).to_contain_text("None in the last <b>21 days</b>")  # text, not markup
        expect(trainer.locator("#queue-answer textarea")).to_have_value(CORRECTION)
        assert trainer.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        trainer.locator("#queue-save").click()
        expect(trainer.locator("#queue-note")).to_contain_text("goes into orchard's next version")
        for route in ("gradio_api/file=", "file="):  # the database is never served, not even to a trainer
            database = trainer.request.get(f"{url}{route}{(data_dir / 'assistant.sqlite3').resolve()}")
            assert database.status in (403, 404) and b"SQLite format" not in database.body()

        farmer.locator("#delete-chat").click()  # two taps: the first only asks
        farmer.locator("#delete-chat-confirm").click()
        expect(farmer.locator("#chatbot")).not_to_contain_text(QUESTION)
        farmer.reload()
        expect(farmer.locator("#chat-list input")).to_have_value("", timeout=30_000)
        expect(farmer.locator("#chatbot")).not_to_contain_text(QUESTION)
    [pair] = questions.answered_pairs(Store.open(data_dir), "orchard")
    assert (pair["question"], pair["answer"], pair["answered_by"]) == (QUESTION, CORRECTION, "grace")
