"""Access control through the HTTP API, as a script or a stolen cookie would use it (no browser).

The app runs as `assistant serve --auth FILE` on the tiny base. A farmer may chat; the server
refuses them training, export and deletion even when the call bypasses the hidden tabs.
"""

from __future__ import annotations

import pytest
from browser import running_app

from assistant.auth import add_user

pytestmark = pytest.mark.browser  # starts the app in a subprocess, like the browser tests


@pytest.fixture(scope="module")
def app(request, tmp_path_factory, tiny_base):
    from tiny import publish_tiny_adapter

    from assistant.registry import Registry

    data_dir = tmp_path_factory.mktemp("access-data")
    registry = Registry(tiny_base.sha256, data_dir)
    publish_tiny_adapter(registry, tiny_base, "alpha", seed=1)
    publish_tiny_adapter(registry, tiny_base, "gamma", seed=3)
    users = tmp_path_factory.mktemp("auth") / "users.json"
    add_user(users, "grace", "trainer", "trainer password")
    add_user(users, "joseph", "farmer", "farmer password")
    add_user(users, "mallory", "farmer", "mallory password")
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir),
                     "--auth", str(users), request=request) as url:
        yield url


def _client(url, user, password):
    from gradio_client import Client

    return Client(url, auth=(user, password), verbose=False, download_files=False)


def test_no_login_no_app(app):
    from gradio_client import Client

    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own types per version
        Client(app, verbose=False, download_files=False).predict("hi", [], "none", 16, 0.0, False,
                                                                 api_name="/respond")


def test_farmer_chats_but_cannot_train_export_or_delete(app, tmp_path):
    from gradio_client.exceptions import AppError

    farmer = _client(app, "joseph", "farmer password")
    display, _box = farmer.predict("Hello there", [], "alpha", 16, 0.0, False, api_name="/respond")
    content = display[-1]["content"]  # Gradio 6 sends message content as typed parts
    text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
    assert "— alpha v1" in text
    for call in (lambda: farmer.predict(api_name="/cancel"),
                 lambda: farmer.predict("alpha", "lora-gguf", api_name="/run"),
                 lambda: farmer.predict("alpha", True, api_name="/delete")):
        with pytest.raises(AppError, match="may not"):
            call()


def test_trainer_may_use_the_trainer_handlers(app):
    trainer = _client(app, "grace", "trainer password")
    assert "No training is running" in trainer.predict(api_name="/cancel")
    message, _ = trainer.predict("gamma", False, api_name="/delete")
    assert "Tick" in message  # nothing is deleted without the confirmation
    message, _ = trainer.predict("gamma", True, api_name="/delete")
    assert "Deleted **gamma** (1 version)" in message
    farmer = _client(app, "joseph", "farmer password")
    display, _box = farmer.predict("Hello", [], "gamma", 16, 0.0, False, api_name="/respond")
    assert "⚠️" in str(display[-1]["content"]) and "gamma" in str(display[-1]["content"])  # gone for everyone

