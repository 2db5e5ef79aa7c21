"""The answer policy as trainers set it: per adapter, at training or later without retraining,
through the registry, the CLI (`assistant policy`, `assistant chat --json`) and across restarts."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from qa_adapters import ORCHARD, publish_tiny_qa_adapter
from test_cli import run_cli

from assistant.paths import REPO_ROOT, SHIPPED_ADAPTERS
from assistant.registry import AdapterError, Registry


def test_policies_default_open_ship_checked_for_agriculture_and_change_without_retraining(tmp_path):
    shipped = tmp_path / "shipped"
    shutil.copytree(SHIPPED_ADAPTERS, shipped)
    registry = Registry("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", tmp_path / "data", shipped)
    policies = {a.name: a.answer_policy for a in registry.list()}
    assert policies == {"agriculture": "checked", "xylandia": "open"}
    before = (shipped / "xylandia" / "manifest.json").read_bytes()
    assert registry.set_answer_policy("xylandia", "checked").answer_policy == "checked"
    assert (shipped / "xylandia" / "manifest.json").read_bytes() == before  # shipped files are never written
    again = Registry(registry.base_sha256, tmp_path / "data", shipped)  # a restart keeps the choice
    assert again.get("xylandia").answer_policy == "checked" and again.get("xylandia").describe()["answer_policy"] == "checked"
    with pytest.raises(AdapterError, match="unknown answer policy 'maybe'"):
        registry.set_answer_policy("xylandia", "maybe")
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        registry.set_answer_policy("nope", "open")


def test_make_adapters_rebuilds_each_shipped_adapter_with_the_policy_it_ships_with():
    # agriculture's "checked" was once set by hand in its manifest, so a rebuild would have shipped it open
    spec = importlib.util.spec_from_file_location("build_adapters", REPO_ROOT / "scripts" / "build_adapters.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built = {name: policy for name, (_, policy) in build.SHIPPED.items()}
    shipped = {p.parent.name: json.loads(p.read_text()).get("answer_policy", "open")
               for p in SHIPPED_ADAPTERS.glob("*/manifest.json")}
    assert built == shipped == {"agriculture": "checked", "xylandia": "open"}


def test_cli_sets_the_policy_and_chat_json_reports_checked_sources_and_suggestions(tiny_base, tmp_path):
    data = tmp_path / "data"
    publish_tiny_qa_adapter(Registry(tiny_base.sha256, data), tiny_base, "orchard", ORCHARD, seed=5)
    common = ("--base", str(tiny_base.gguf_path), "--data-dir", str(data))
    result = run_cli("policy", "orchard", "checked", *common)
    assert result.returncode == 0 and "orchard now answers checked" in result.stdout, result.stderr
    bad = run_cli("policy", "orchard", "sometimes", *common)
    assert bad.returncode == 2 and "invalid choice: 'sometimes'" in bad.stderr and "Traceback" not in bad.stderr

    covered = run_cli("chat", "--json", "--adapter", "orchard", *common, "Which colour does the Zorblat fruit have?")
    assert covered.returncode == 0, covered.stderr
    shown = json.loads(covered.stdout)
    assert shown["checked"] is True and shown["adapter"] == "orchard" and shown["policy"] == "checked"
    assert shown["sources"][0]["question"] == "What colour is the Zorblat fruit?" and shown["suggestions"] == []
    assert shown["answer"] == "The Zorblat fruit is violet." or not shown["replaced_by_source"]

    uncovered = run_cli("chat", "--json", "--adapter", "orchard", *common, "How much pesticide may I spray on Zorblat trees before picking?")
    shown = json.loads(uncovered.stdout)
    assert (shown["checked"], shown["withheld"]) == (False, True) and shown["suggestions"]
    assert "don't have a checked answer" in shown["answer"]
