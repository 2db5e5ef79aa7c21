"""Helpers for browser tests: the app in a subprocess on loopback, and Debian chromium via playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(*args: str, timeout: float = 180):
    """`assistant serve ARGS` on a free loopback port; yields its URL; stops it afterwards."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{proc.stdout.read()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("the app did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser():
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def choose_adapter(page, label: str) -> None:
    page.locator("#adapter-select input").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.keyboard.press("Escape")


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")


def last_answer(page, label: str, timeout_ms: int = 120_000) -> str:
    """Wait until the last bot message is final (labelled, no cursor) and return its text."""
    bot = page.locator("#chatbot .message.bot, #chatbot [data-testid='bot']").last
    bot.filter(has_text=f"— {label}").wait_for(timeout=timeout_ms)
    page.wait_for_function(
        "() => { const m = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid=\"bot\"]');"
        " const t = m.length ? m[m.length-1].innerText : ''; return t.length && !t.includes('▌'); }",
        timeout=timeout_ms)
    return bot.inner_text()
