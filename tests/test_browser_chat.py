"""The chat tab in a real browser: pick an adapter, ask, read the streamed answer; two tabs at once;
chats kept per browser (the app has no users file). One app serves the whole module."""

from __future__ import annotations

import re

import pytest
from browser import ask, browser, choose_adapter, last_answer, running_app
from playwright.sync_api import expect

from assistant.answer import stream_text
from assistant.engines import GenerationSettings
from ui.chats import BROWSER_KEY

pytestmark = pytest.mark.browser
QUESTION = "What grows well in sandy soil?"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def url(request, tiny_base, tiny_adapters):
    """The app without a users file (chats kept per browser), started once for the module's tests."""
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters), request=request) as served:
        yield served


def _expected(engine, registry, name):
    adapter = registry.get(name) if name else None
    return "".join(stream_text(engine, [{"role": "user", "content": QUESTION}], adapter, GenerationSettings(max_tokens=256)))


def _norm(text):
    return re.sub(r"\s+", " ", text).strip()


def test_two_pages_chat_with_different_adapters_at_once(url, tiny_llamacpp, tiny_registry):
    expected = {name: _expected(tiny_llamacpp, tiny_registry, name) for name in ("alpha", "beta")}
    assert expected["alpha"] != expected["beta"]
    with browser() as b:
        pages = {name: b.new_page() for name in expected}
        for name, page in pages.items():
            page.goto(url)
            choose_adapter(page, f"{name} (v1)")
            expect(page.locator("#adapter-card")).to_contain_text(f"{name} v1")  # the chosen adapter's card
            assert f"**{name}**" not in page.locator("#adapter-card").inner_text()  # rendered, not raw markdown
        for page in pages.values():  # both questions in flight before either answer is read
            ask(page, QUESTION)
        for name, page in pages.items():
            answer = last_answer(page, f"{name} v1")
            assert _norm(expected[name])[:40] in _norm(answer), (name, answer)
            assert f"— {name} v1" in answer
            # the choice held: nothing switched the chat back while it was answered
            expect(page.locator("#adapter-select input")).to_have_value(f"{name} (v1)")
            expect(page.locator("#adapter-card")).to_contain_text(f"{name} v1")


def test_empty_question_does_nothing_and_clear_empties(url):
    with browser() as b:
        page = b.new_page()
        page.goto(url)
        ask(page, "   ")
        page.wait_for_timeout(1500)
        assert page.locator("#chatbot .message").count() == 0
        ask(page, QUESTION)
        last_answer(page, "base model")
        page.locator("#clear").click()
        page.wait_for_function("() => document.querySelectorAll('#chatbot .message').length === 0")


def test_reload_mid_answer_and_a_question_sent_twice_leave_no_slot_busy(url):
    """A page reloaded right after asking, and a question sent twice in a row: later questions are
    answered, and afterwards the engine has every slot free and nobody waiting."""
    from gradio_client import Client
    from tiny import wait_for

    with browser() as b:
        page = b.new_page()
        for _ in range(3):  # asked, then gone before (or while) the answer streams
            page.goto(url)
            ask(page, QUESTION)
            page.reload()
        page.goto(url)
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#question textarea").press("Enter")
        page.locator("#send").click()  # the same question again, at once
        last_answer(page, "base model")
        other = b.new_page()
        other.goto(url)
        ask(other, QUESTION)
        assert "— base model" in last_answer(other, "base model")
        client = Client(url, verbose=False)
        settled = wait_for(lambda: (s := client.predict(api_name="/engine_status"))["busy"] == 0 and s, timeout=60,
                           what="every slot to be freed")
        assert settled["waiting"] == 0 and settled["free"] == settled["slots"]


def past_chats(page):
    """Open the page's list of past chats; its options (Escape closes it again)."""
    page.locator("#chat-list input").click()
    return page.locator("#chat-list").get_by_role("option")


def test_chats_are_kept_per_browser_and_never_shown_to_another(url):
    """Without a users file each browser has its own chats: A's chat survives a reload and opens
    from the list; another browser B (its own storage) sees none of it, and A sees nothing of B's."""
    asked_by_a, asked_by_b = "Which crops like clay soil?", "When should I plant maize?"  # short answers: quick
    with browser() as b:
        a = b.new_context(viewport=PHONE).new_page()
        a.goto(url)
        ask(a, asked_by_a)
        last_answer(a, "base model")
        expect(a.locator("#chat-list input")).to_have_value(re.compile("^Which crops like clay"))

        a.reload()
        expect(a.locator("#chatbot")).to_contain_text(asked_by_a, timeout=30_000)  # the most recent chat, reopened
        a.locator("#clear").click()
        expect(a.locator("#chatbot")).not_to_contain_text(asked_by_a)
        past_chats(a).filter(has_text="Which crops like clay").click()  # opened again from the list
        expect(a.locator("#chatbot")).to_contain_text(asked_by_a)
        expect(a.locator("#chatbot")).to_contain_text("— base model")
        assert a.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing off-screen

        other = b.new_context(viewport=PHONE).new_page()  # another browser: its own local storage, its own id
        other.goto(url)
        other.wait_for_function("key => localStorage.getItem(key)", arg=BROWSER_KEY)  # its id, given at load
        expect(other.locator("#chat-list input")).to_have_value("")
        expect(other.locator("#chatbot")).not_to_contain_text(asked_by_a)
        expect(past_chats(other)).to_have_count(0)
        other.keyboard.press("Escape")
        ask(other, asked_by_b)
        last_answer(other, "base model")
        expect(other.locator("#chat-list input")).to_have_value(re.compile("^When should I plant maize"))
        expect(past_chats(other)).to_have_text([re.compile("When should I plant maize")])  # B's chat only
        other.keyboard.press("Escape")

        a.reload()  # the list as the server has it now
        expect(a.locator("#chatbot")).to_contain_text(asked_by_a, timeout=30_000)
        expect(past_chats(a)).to_have_text([re.compile("Which crops like clay")])  # A's chat only, none of B's
        expect(a.locator("#chatbot")).not_to_contain_text(asked_by_b)
