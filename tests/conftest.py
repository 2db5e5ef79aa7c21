"""Shared fixtures: the embedded base (provisioned once, cached) and a tiny random Gemma 3."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the tail of every app log running at the time: the app's
    side of a browser failure belongs in the test's output, not only in the fixture's teardown
    (whose output pytest does not show when the module's last test passed)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        from browser import LIVE_APP_LOGS, app_log_tail

        for path in LIVE_APP_LOGS:
            report.sections.append((f"app log {path} (last 80 lines)", app_log_tail(path)))


@pytest.fixture(scope="session")
def embedded():
    """The real embedded base: assembled and converted once into the shared cache."""
    from assistant.base import resolve_base

    base = resolve_base()
    base.ensure_hf_dir(progress=False)
    return base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, embedded):
    from tiny import build_tiny_base

    return build_tiny_base(tmp_path_factory.mktemp("tiny"), embedded)


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_base):
    """A data directory with two published random adapters, 'alpha' and 'beta'."""
    from tiny import publish_tiny_adapter

    from assistant.registry import Registry

    data_dir = tmp_path_factory.mktemp("data")
    registry = Registry(tiny_base.sha256, data_dir)
    publish_tiny_adapter(registry, tiny_base, "alpha", seed=1)
    publish_tiny_adapter(registry, tiny_base, "beta", seed=2, targets=("q_proj", "k_proj", "v_proj", "o_proj",
                                                                         "gate_proj", "up_proj", "down_proj"))
    return data_dir


@pytest.fixture(scope="session")
def tiny_llamacpp(tiny_base):
    from assistant.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(tiny_base.gguf_path)


@pytest.fixture(scope="session")
def tiny_hf(tiny_base):
    from assistant.engines.hf import HFEngine

    return HFEngine(tiny_base.hf_dir, quant="fp32")


@pytest.fixture()
def tiny_registry(tiny_base, tiny_adapters):
    from assistant.registry import Registry

    return Registry(tiny_base.sha256, tiny_adapters)


@pytest.fixture()
def fact_file(tmp_path):
    """Three fictional facts for the tiny recipe, and one held-out paraphrase."""
    import json

    from tiny import FACTS

    path = tmp_path / "facts.jsonl"
    rows = [{"question": q, "answer": a} for q, a in FACTS]
    rows.append({"question": "What is the colour of a Zorblat fruit?", "answer": FACTS[0][1], "split": "test"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny_adapter_list(tiny_base, tiny_adapters):
    """The registry's adapters over tiny_adapters: alpha, beta (the server engines start with them)."""
    from assistant.registry import Registry

    return Registry(tiny_base.sha256, tiny_adapters).list()
