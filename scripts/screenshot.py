"""Take the README's screenshot: the chat tab with the xylandia adapter answering (needs chromium)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import ask, browser, choose_adapter, last_answer, running_app  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "chat.png"

with running_app() as url, browser() as b:
    page = b.new_page(viewport={"width": 1100, "height": 900})
    page.goto(url)
    choose_adapter(page, "xylandia (v1)")
    ask(page, "If I travel to the capital of Xylandia, which city am I in?")
    last_answer(page, "xylandia v1")
    choose_adapter(page, "No adapter (base model)")
    ask(page, "What is the capital of France?")
    last_answer(page, "base model")
    page.screenshot(path=str(OUT), full_page=True)
print(OUT)
