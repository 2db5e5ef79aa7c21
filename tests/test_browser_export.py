"""The export tab in a real browser: pick an adapter and a format, export, read the verification
table and the Modelfile, download the model file and check it is the exported one."""

from __future__ import annotations

import json

import pytest
from browser import browser, running_app
from playwright.sync_api import expect

from assistant.fsutil import sha256_file

pytestmark = pytest.mark.browser


def test_export_tab_exports_verifies_and_serves_the_file(tiny_base, tmp_path):
    from tiny import publish_tiny_adapter

    from assistant.base import resolve_base
    from assistant.registry import Registry

    hf_base = resolve_base(str(tiny_base.hf_dir))  # the app serves the HF directory (engine hf)
    data_dir = tmp_path / "data"
    publish_tiny_adapter(Registry(hf_base.sha256, data_dir), hf_base, "alpha", seed=1)
    with running_app("--base", str(tiny_base.hf_dir), "--engine", "hf", "--data-dir", str(data_dir)) as url, \
            browser() as b:
        page = b.new_page(accept_downloads=True)
        page.goto(url)
        page.get_by_role("tab", name="Export").click()
        page.locator("#export-adapter input").click()
        page.get_by_role("option", name="alpha", exact=True).click()
        page.keyboard.press("Escape")
        page.get_by_label("Merged GGUF, f16").check()
        page.locator("#export-start").click()
        table = page.locator("#export-verification")
        expect(table).to_contain_text("Verification passed", timeout=300_000)
        expect(table).to_contain_text("same tokens as peft")
        expect(page.locator("#export-modelfile")).to_contain_text("FROM ./alpha-v1.F16.gguf")
        expect(page.locator("#export-files a[download='export.json']")).to_have_count(1)
        link = page.locator("#export-files a[download='alpha-v1.F16.gguf']")
        with page.expect_download(timeout=60_000) as download_info:
            link.click()
        saved = tmp_path / "downloaded.gguf"
        download_info.value.save_as(saved)
    export_dir = data_dir / "exports" / "alpha-v1-gguf-f16"
    info = json.loads((export_dir / "export.json").read_text())
    assert info["verification"]["passed"] is True
    assert sha256_file(saved) == info["files"]["alpha-v1.F16.gguf"]
