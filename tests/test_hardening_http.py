"""What is a trainer's stays a trainer's, and nobody locks the others out: the running app
(`assistant serve --auth FILE --trusted-proxy 127.0.0.1`) probed over HTTP as an attacker would.

The app believes X-Forwarded-For from 127.0.0.1 (the test plays the reverse proxy), so each test
can speak as a client of its own address: a failing one never slows the test's other clients.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from browser import browser, running_app

from assistant.auth import add_user
from assistant.throttle import FREE_FAILURES

pytestmark = pytest.mark.browser  # it runs the app in a subprocess, like the browser tests
ADAPTER = "zq-hidden-crop"  # a name that appears nowhere else, so any leak of it is seen
DESCRIPTION = ("Visit [our shop](http://evil.example/a) or https://evil.example/b, <b>bold</b> **loud** "
               "`code` www.evil.example mail@evil.example")
SOURCE = "[file](http://evil.example/f).csv"
PASSWORDS = {"grace": "trainer password", "joseph": "farmer password"}
MAX_UPLOAD_MB = 1
STALE = Path(tempfile.gettempdir()) / f"field-assistant-gradio-{os.getuid()}" / "app-999999999"


@pytest.fixture(scope="module")
def app(request, tmp_path_factory, tiny_base):
    from tiny import make_lora

    from assistant.registry import Registry, publish_peft_model

    data_dir = tmp_path_factory.mktemp("hardening-data")
    registry = Registry(tiny_base.sha256, data_dir)
    manifest = {"base_sha256": tiny_base.sha256, "prompt_format": "qa", "description": DESCRIPTION,
                "dataset": {"source": SOURCE, "train_pairs": 3, "test_pairs": 1},
                "training": {"kind": "random", "seed": 1}}
    publish_peft_model(registry, make_lora(tiny_base, 1), ADAPTER, manifest)
    export = data_dir / "exports" / f"{ADAPTER}-v1-lora-gguf"  # as an export leaves it
    export.mkdir(parents=True)
    (export / "export.json").write_text('{"adapter": "secret"}')
    (export / f"{ADAPTER}-v1.lora.gguf").write_bytes(b"GGUF secret weights")
    users = tmp_path_factory.mktemp("auth") / "users.json"
    add_user(users, "grace", "trainer", PASSWORDS["grace"])
    add_user(users, "joseph", "farmer", PASSWORDS["joseph"])
    STALE.mkdir(parents=True, exist_ok=True)  # what a killed app (pid long gone) left behind
    (STALE / "upload.csv").write_text("question,answer\n")
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir), "--auth", str(users),
                     "--trusted-proxy", "127.0.0.1", "--max-upload-mb", str(MAX_UPLOAD_MB), request=request) as url:
        yield url, data_dir


def _http(url, client: str):
    import httpx

    return httpx.Client(base_url=url, headers={"X-Forwarded-For": client}, timeout=60)


def _login(url, user, client="198.51.100.10", password=None):
    """(response, an HTTP client carrying the session cookie when the log-in worked)."""
    http = _http(url, client)
    response = http.post("login", data={"username": user, "password": password or PASSWORDS[user.lower()]})
    return response, http


def test_a_failing_client_does_not_lock_out_another_clients_right_password(app):
    url, _ = app
    for _ in range(FREE_FAILURES + 2):
        response, _ = _login(url, "grace", client="198.51.100.66", password="a guess")
        assert response.status_code == 400
    response, _ = _login(url, "grace", client="198.51.100.66")  # the guesser waits, right password or not
    assert response.status_code == 400 and "Too many failed log-ins from your address" in response.json()["detail"]
    for client in ("198.51.100.7", "2001:db8::7"):  # everyone else logs in as usual
        response, _ = _login(url, "grace", client=client)
        assert response.status_code == 200, response.text
    response, _ = _login(url, "grace", client="198.51.100.67", password="x" * 100_000)
    assert response.status_code == 400  # an over-long password is refused, unhashed


def test_a_name_in_capitals_is_the_same_user_for_every_call(app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _ = app
    farmer = Client(url, auth=("JOSEPH", PASSWORDS["joseph"]), verbose=False, download_files=False)
    display, _box = farmer.predict("Hello there", [], ADAPTER, 16, 0.0, False, api_name="/respond")
    content = display[-1]["content"]
    text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
    assert f"— {ADAPTER} v1" in text  # not "Please log in first."
    with pytest.raises(AppError, match=r"\(joseph, farmer\) may not"):
        farmer.predict(api_name="/cancel")


def test_anonymous_visitors_get_no_api_schema_and_no_adapter_names(app):
    url, _ = app
    http = _http(url, "198.51.100.20")
    page = http.get("/")
    assert page.status_code == 200 and "window.gradio_api_info = null;" in page.text
    for path in ("/", "/config", "/gradio_api/info", "/gradio_api/info?all_endpoints=true", "/gradio_api/openapi.json",
                 "/gradio_api/app_id", "/gradio_api/startup-events", "/manifest.json"):
        response = http.get(path)
        assert ADAPTER not in response.text and "/respond" not in response.text, path
    assert http.get("/gradio_api/info").status_code == 401
    _, farmer = _login(url, "joseph")  # logged in, the page has the app (so the check above could fail)
    assert ADAPTER in farmer.get("/").text and ADAPTER in farmer.get("/gradio_api/info").text


def test_a_farmer_gets_no_trainer_file(app):
    url, data_dir = app
    _, farmer = _login(url, "joseph")
    _, trainer = _login(url, "grace")
    uploaded = trainer.post("gradio_api/upload", files={"files": ("farm.csv", b"question,answer\nq?,a.\n")})
    assert uploaded.status_code == 200, uploaded.text
    upload = uploaded.json()[0]
    assert "app-" in upload and "field-assistant-gradio" in upload  # the app's own temp directory
    export = data_dir / "exports" / f"{ADAPTER}-v1-lora-gguf"
    trainer_files = [export / "export.json", export / f"{ADAPTER}-v1.lora.gguf",
                     data_dir / "adapters" / ADAPTER / "v1" / "manifest.json", Path(upload)]
    for path in trainer_files:
        for route in (f"gradio_api/file={path}", f"gradio_api/file/{path}", f"gradio_api/file={path.parent}/./{path.name}"):
            response = farmer.get(route)
            assert response.status_code in (403, 404), (route, response.status_code)
            assert b"secret" not in response.content and b"question,answer" not in response.content
    # The data directory is not served to anyone; downloads go through the export handler only.
    for path in trainer_files[:3]:
        assert trainer.get(f"gradio_api/file={path}").status_code in (403, 404)
    assert trainer.get(f"gradio_api/file={upload}").content == b"question,answer\nq?,a.\n"


def test_farmers_cannot_upload_and_an_upload_is_capped_in_total(app):
    url, _ = app
    small = {"files": ("farm.csv", b"question,answer\nq?,a.\n")}
    anonymous = _http(url, "198.51.100.30").post("gradio_api/upload", files=small)
    assert anonymous.status_code == 401
    _, farmer = _login(url, "joseph")
    for files in (small, {"files": ("tool.exe", b"MZ" + b"\0" * 1000)}):
        refused = farmer.post("gradio_api/upload", files=files)
        assert refused.status_code == 403 and refused.json()["detail"] == \
            "Your account (joseph, farmer) may not upload files; ask a trainer."
    _, trainer = _login(url, "grace")
    part = b"x" * (MAX_UPLOAD_MB * 2 ** 20 // 2)  # each file under the per-file cap, together over it
    burst = trainer.post("gradio_api/upload", files=[("files", (f"f{i}.csv", part)) for i in range(3)])
    assert burst.status_code == 413 and "all files together" in burst.json()["detail"]

    def chunks():
        yield b"--x\r\n"

    unsized = trainer.post("gradio_api/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert unsized.status_code == 411
    assert trainer.post("gradio_api/upload", files=small).status_code == 200


def test_uploads_a_killed_app_left_behind_are_removed_at_start(app):
    assert not STALE.exists()


def test_the_adapter_description_and_file_name_are_shown_as_text(app):
    url, _ = app
    with browser() as b:
        page = b.new_page()
        page.goto(url)
        page.locator("input[type=text]").first.fill("joseph")
        page.locator("input[type=password]").fill(PASSWORDS["joseph"])
        page.keyboard.press("Enter")
        page.locator("#adapter-select input").click()
        page.get_by_role("option", name=f"{ADAPTER} (v1)", exact=True).click()
        page.keyboard.press("Escape")
        card = page.locator("#adapter-card")
        card.filter(has_text="Visit [our shop]").wait_for(timeout=30_000)
        text = card.inner_text()
        for literal in ("[our shop](http://evil.example/a)", "https://evil.example/b", "<b>bold</b>", "**loud**",
                        "`code`", "www.evil.example", "mail@evil.example", SOURCE):
            assert literal in text, literal
        assert card.locator("a").count() == 0 and card.locator("b, code, em").count() == 0
        assert card.locator("strong").all_inner_texts() == [ADAPTER]  # only the card's own bold: the name


def test_an_export_is_offered_to_its_trainer_alone(app):
    from gradio_client import Client

    url, data_dir = app
    trainer = Client(url, auth=("grace", PASSWORDS["grace"]), verbose=False, download_files=False)
    progress, _table, files, _modelfile = trainer.predict(ADAPTER, "lora-gguf", api_name="/run")
    assert "Verification passed" in _table and files, progress
    export = data_dir / "exports" / f"{ADAPTER}-v1-lora-gguf"
    _, farmer = _login(url, "joseph")
    _, grace = _login(url, "grace")
    for offered in files:  # linked for this request into a directory no one could guess
        assert re.search(r"/download-[0-9a-f]{32}/[^/]+$", offered["path"]), offered["path"]
        assert grace.get(f"gradio_api/file={offered['path']}").content == (export / offered["orig_name"]).read_bytes()
        assert farmer.get(f"gradio_api/file={offered['path']}").status_code == 403
