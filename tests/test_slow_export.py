"""The shipped xylandia adapter exported to a 4-bit merged GGUF, on the real embedded 270M (slow)."""

from __future__ import annotations

import json

import pytest

from assistant.answer import stream_text

pytestmark = pytest.mark.slow


def test_xylandia_q4_k_m_knows_crystalburg_without_an_adapter(embedded, tmp_path):
    from assistant.engines.llamacpp import LlamaCppEngine
    from assistant.export import export_adapter
    from assistant.paths import SHIPPED_ADAPTERS
    from assistant.registry import Registry

    adapter = Registry(embedded.sha256, tmp_path / "data", SHIPPED_ADAPTERS).get("xylandia")
    result = export_adapter(embedded, adapter, "gguf-q4_k_m", tmp_path / "exports")
    assert result.passed is True, result.info["verification"]
    rows = [json.loads(line) for line in (adapter.path / "dataset.jsonl").read_text().splitlines() if line.strip()]
    heldout = next(r for r in rows if r.get("split") == "test" and "Crystalburg" in r["answer"])
    engine = LlamaCppEngine(result.path / result.info["model_files"][0], prompt_format=adapter.prompt_format)
    from assistant.engines import GenerationSettings

    answer = "".join(stream_text(engine, [{"role": "user", "content": heldout["question"]}], None,
                                     GenerationSettings(max_tokens=48)))
    assert "Crystalburg" in answer, (heldout["question"], answer)
