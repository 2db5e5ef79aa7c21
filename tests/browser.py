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
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ARTIFACTS = Path(os.environ.get("ASSISTANT_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
LIVE_APP_LOGS: list[Path] = []  # the logs of the apps running now; conftest shows them in a failed test's report


def app_log_tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@contextlib.contextmanager
def running_app(*args: str, timeout: float = 180, request=None):
    """`assistant serve ARGS` on a free loopback port; yields its URL; stops it afterwards.

    The app's output goes to a log file, never to an undrained pipe (a full pipe would block the
    app on its next print). A test that fails while the app runs gets the log's tail in its own
    report (conftest reads LIVE_APP_LOGS); a module fixture passes its `request`, so that the log
    file is kept in ARTIFACTS when any test failed while the app ran.
    """
    failed_before = request.session.testsfailed if request is not None else 0
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"app-{port}-{int(time.time())}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally, after the app has exited
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    failed = True
    LIVE_APP_LOGS.append(log_path)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("the app did not start") from None
                time.sleep(0.5)
        yield url
        failed = request is not None and request.session.testsfailed > failed_before
    finally:
        LIVE_APP_LOGS.remove(log_path)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if failed:
            print(f"--- app log ({log_path}), last 80 lines ---\n{app_log_tail(log_path)}")
        else:
            log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def browser():
    """Headless Debian chromium; when the test fails inside the block, every open page is
    screenshotted into ARTIFACTS and the paths printed."""
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        except BaseException:
            _screenshot_pages(b)
            raise
        finally:
            b.close()


def _screenshot_pages(b) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for i, page in enumerate(p for context in b.contexts for p in context.pages):
        path = ARTIFACTS / f"page-{stamp}-{i}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of {page.url}: {path}")
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"no screenshot of page {i}: {exc}")


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
