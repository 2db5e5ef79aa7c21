"""Restart the app while farmers are asking: every published adapter and index entry survives."""

from __future__ import annotations

import threading

import pytest
from browser import running_app
from qa_adapters import ORCHARD, XYLANDIA, publish_tiny_qa_adapter

from assistant.registry import Registry

pytestmark = pytest.mark.browser  # runs the app in a subprocess


def _ask_until_stopped(url: str, adapter: str, stop: threading.Event, outcomes: list) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False)
        while not stop.is_set():
            client.predict("What colour is the Zorblat fruit?", [], adapter, 64, 0.0, True, api_name="/respond")
            outcomes.append("answered")
    except Exception as exc:  # the app going away mid-answer is the point of this test
        outcomes.append(type(exc).__name__)


def test_restart_under_load_keeps_adapters_and_index(tiny_base, tmp_path):
    from gradio_client import Client

    from assistant.grounding.index import Knowledge

    data_dir = tmp_path / "data"
    registry = Registry(tiny_base.sha256, data_dir)
    publish_tiny_qa_adapter(registry, tiny_base, "orchard", ORCHARD, seed=5)
    publish_tiny_qa_adapter(registry, tiny_base, "xylandia-notes", XYLANDIA, seed=6)
    files_before = {p.relative_to(data_dir): p.read_bytes() for p in (data_dir / "adapters").rglob("*") if p.is_file()}
    args = ("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir))

    with running_app(*args) as url:
        stop, outcomes = threading.Event(), []
        users = [threading.Thread(target=_ask_until_stopped, args=(url, name, stop, outcomes), daemon=True)
                 for name in ("orchard", "xylandia-notes", "orchard")]
        for user in users:
            user.start()
        while outcomes.count("answered") < 3:  # load is running: answers are streaming
            threading.Event().wait(0.2)
        # leaving the block terminates the app while the users are still asking
    stop.set()
    for user in users:
        user.join(timeout=60)

    with running_app(*args) as url:  # it comes back, and answers with the same adapters
        display, _ = Client(url, verbose=False, download_files=False).predict(
            "What colour is the Zorblat fruit?", [], "orchard", 64, 0.0, True, api_name="/respond")
        text = str(display[-1]["content"])
        assert "orchard v1" in text and "Sources" in text  # the adapter and its index entries are there

    files_after = {p.relative_to(data_dir): p.read_bytes() for p in (data_dir / "adapters").rglob("*") if p.is_file()}
    assert files_after == files_before  # nothing published was touched
    assert [a.name for a in registry.list() if a.usable] == ["orchard", "xylandia-notes"]
    with Knowledge.open(data_dir) as knowledge:  # the app is gone, so this process may own the index
        assert knowledge.indexed() == {"orchard@v1": 4, "xylandia-notes@v1": 3}
