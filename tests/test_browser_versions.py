"""The Train tab's Versions section in a real browser: one click makes v1 serve again; the chat,
and after a restart the API's /v1/models, serve v1."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest
from browser import browser, running_app
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _pick(page, box: str, option: str) -> None:
    page.locator(f"#{box} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def test_rollback_in_one_click_serves_v1_in_the_chat_and_after_a_restart(tiny_base, tiny_registry, tmp_path):
    data = tmp_path / "data"
    for version in (1, 2):
        dst = data / "adapters" / "crop" / f"v{version}"
        shutil.copytree(tiny_registry.get("alpha").path, dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        (dst / "manifest.json").write_text(json.dumps({**manifest, "name": "crop", "version": version}))
    args = ("--base", str(tiny_base.gguf_path), "--data-dir", str(data))
    with running_app(*args) as url, browser() as b:
        page = b.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.get_by_text("Versions: which one serves, and the next version").click()
        _pick(page, "versions-adapter", "crop")
        table = page.locator("#versions-table")
        expect(table).to_contain_text("✅ serving", timeout=30_000)
        expect(table.locator("tr", has_text="v2")).to_contain_text("✅ serving")
        _pick(page, "versions-version", "v1 (kept)")
        page.locator("#versions-serve").click()
        expect(page.locator("#versions-status")).to_contain_text("crop v1 serves now (no retraining)", timeout=30_000)
        expect(table.locator("tr", has_text="v1")).to_contain_text("✅ serving")
        page.locator("#versions-serve").click()  # the same version again: refused, said so
        expect(page.locator("#versions-status")).to_contain_text("crop v1 already serves; nothing changed")
        page.get_by_role("tab", name="Chat").click()
        page.locator("#adapter-select input").click()
        expect(page.get_by_role("option", name="crop (v1)", exact=True)).to_have_count(1)
    with running_app(*args) as url:  # the app started again: the same version serves, the API says so too
        models = json.loads(urllib.request.urlopen(url + "v1/models", timeout=30).read())
        crop = next(m for m in models["data"] if m["id"] == "crop")
        assert crop["x_assistant"]["version"] == 1
