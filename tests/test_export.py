"""Export on the tiny Gemma 3: merged GGUFs, the LoRA GGUF and the HF copy against the peft model,
the Modelfile and export.json, and the faults (unknown adapter, unwritable or full disk, a kill)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from assistant import export as ex
from assistant.engines import GenerationSettings
from assistant.export_modelfile import CHAT_TEMPLATES
from assistant.fsutil import sha256_file
from assistant.gguf.reader import read_metadata, read_tokenizer
from assistant.gguf.tokenizer import hf_tokenizer_kv
from assistant.prompts import get_format
from assistant.registry import Registry

QUESTIONS = ["What is the capital of France?", "Hello there, farmer", "Soil pH 6.5 means"]
GREEDY = GenerationSettings(max_tokens=12)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_base, tiny_adapters):
    """Each format exported once (verified in its own process), shared by the tests below."""
    registry = Registry(tiny_base.sha256, tiny_adapters)
    out = tmp_path_factory.mktemp("exports")
    done = {}
    for fmt, name in (("gguf-f16", "alpha"), ("gguf-q8_0", "beta"), ("gguf-q4_k_m", "beta"),
                      ("lora-gguf", "beta"), ("hf", "beta")):
        phases = []
        done[fmt] = ex.export_adapter(tiny_base, registry.get(name), fmt, out,
                                      progress=lambda phase, message, seen=phases: seen.append(phase))
        done[fmt].phases = phases
    return done


def peft_ids(tiny_hf, adapter, question):
    prompt = get_format("qa").render([{"role": "user", "content": question}])
    return list(tiny_hf.generate_ids(tiny_hf.tokenize(prompt), adapter, GREEDY))


def test_chat_templates_render_what_the_prompt_formats_render():
    from jinja2 import Template

    messages = [{"role": "user", "content": "First?"}, {"role": "assistant", "content": "One."},
                {"role": "user", "content": "Second?"}]
    for name, template in CHAT_TEMPLATES.items():
        rendered = Template(template).render(messages=messages, bos_token="<bos>", add_generation_prompt=True)
        assert rendered == "<bos>" + get_format(name).render(messages), name


def test_merged_f16_gguf_matches_merged_peft_exactly(exports, tiny_hf, tiny_registry):
    from assistant.engines.llamacpp import LlamaCppEngine

    result = exports["gguf-f16"]
    gguf_path = result.path / result.info["model_files"][0]
    assert gguf_path.name == "alpha-v1.F16.gguf"
    engine = LlamaCppEngine(gguf_path)
    adapter = tiny_registry.get("alpha")
    for question in QUESTIONS:
        prompt = get_format("qa").render([{"role": "user", "content": question}])
        assert list(engine.generate_ids(engine.tokenize(prompt), None, GREEDY)) == peft_ids(tiny_hf, adapter, question), question
    # ...and the verification process, run by the export itself, saw the same.
    verification = result.info["verification"]
    assert verification["passed"] is True
    assert all(row["token_identical"] == 1.0 for row in verification["sets"])
    assert result.phases[0] == "prepare" and "merge" in result.phases and result.phases[-1] == "done"


def test_merged_gguf_carries_tokenizer_and_the_adapters_template(exports):
    for fmt in ("gguf-f16", "gguf-q4_k_m"):
        result = exports[fmt]
        meta = read_metadata(result.path / result.info["model_files"][0])
        assert meta["tokenizer.ggml.model"] == "llama"
        assert meta["tokenizer.chat_template"] == CHAT_TEMPLATES["qa"]
        assert meta["assistant.prompt_format"] == "qa"
        assert meta["general.file_type"] == {"gguf-f16": 1, "gguf-q4_k_m": 15}[fmt]


@pytest.mark.parametrize("fmt", ["gguf-q8_0", "gguf-q4_k_m"])
def test_quantized_gguf_loads_and_answers(exports, fmt):
    verification = exports[fmt].info["verification"]
    assert "error" not in verification, verification
    assert verification["passed"] is True  # on random weights recall is 0 on both sides
    row = verification["sets"][0]
    assert row["questions"] == 8 and all(e["export"] is not None for e in row["examples"])
    if fmt == "gguf-q8_0":  # 8-bit keeps most greedy answers of even a random tiny model
        assert row["token_identical"] >= 0.5, row


def test_lora_gguf_on_the_base_matches_peft(exports, tiny_base, tiny_hf, tiny_registry):
    from types import SimpleNamespace

    from assistant.engines.llamacpp import LlamaCppEngine

    result = exports["lora-gguf"]
    assert result.info["model_files"] == ["beta-v1.lora.gguf"]
    engine = LlamaCppEngine(tiny_base.gguf_path)
    lora = SimpleNamespace(key="exported", name="beta", prompt_format="qa", gguf_path=result.path / "beta-v1.lora.gguf")
    adapter = tiny_registry.get("beta")
    for question in QUESTIONS:
        prompt = get_format("qa").render([{"role": "user", "content": question}])
        assert list(engine.generate_ids(engine.tokenize(prompt), lora, GREEDY)) == peft_ids(tiny_hf, adapter, question), question
    assert result.info["verification"]["passed"] is True


def test_hf_export_reloads_in_plain_transformers_and_matches(exports, tiny_hf, tiny_registry):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = exports["hf"]
    files = set(result.info["files"])
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "Modelfile"} <= files
    model = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    adapter = tiny_registry.get("beta")
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    prompt_ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
        prompt_ids = prompt_ids["input_ids"]
    assert list(prompt_ids) == tiny_hf.tokenize(get_format("qa").render(messages))  # template == our format
    with torch.no_grad():
        out = model.generate(torch.tensor([list(prompt_ids)]), max_new_tokens=GREEDY.max_tokens, do_sample=False)
    assert out[0, len(prompt_ids):].tolist() == peft_ids(tiny_hf, adapter, QUESTIONS[0])
    assert result.info["verification"]["passed"] is True
    assert all(row["token_identical"] == 1.0 for row in result.info["verification"]["sets"])


def test_modelfile_and_export_json(exports, tiny_base):
    for fmt, result in exports.items():
        info = json.loads((result.path / "export.json").read_text())
        assert info["format"] == fmt and info["base"]["sha256"] == tiny_base.sha256
        assert info["adapter"]["name"] in ("alpha", "beta") and info["adapter"]["version"] == 1
        on_disk = {p.name for p in result.path.iterdir() if p.is_file()}
        assert on_disk == set(info["files"]) | {"export.json"}
        for name, digest in info["files"].items():
            assert sha256_file(result.path / name) == digest
        modelfile = (result.path / "Modelfile").read_text()
        assert 'TEMPLATE """' in modelfile and "Question: {{ .Content }}" in modelfile
        assert 'PARAMETER stop "Question:"' in modelfile
        if fmt == "lora-gguf":
            assert f"FROM {tiny_base.gguf_path}\n" in modelfile and "ADAPTER ./beta-v1.lora.gguf\n" in modelfile
        elif fmt == "hf":
            assert "FROM .\n" in modelfile
        else:
            assert f"FROM ./{info['model_files'][0]}\n" in modelfile
    assert not [p for p in next(iter(exports.values())).path.parent.iterdir() if p.name.startswith(".")]


def test_an_hf_base_exports_a_gguf_with_a_tokenizer_of_its_own(tiny_base, tiny_registry, tmp_path):
    """No base GGUF to copy the tokenizer from: it is rebuilt from tokenizer.json, and must agree."""
    hf_only = replace(tiny_base, gguf_path=None)
    result = ex.export_adapter(hf_only, tiny_registry.get("alpha"), "gguf-f16", tmp_path)
    verification = result.info["verification"]
    assert verification["passed"] is True, verification
    assert all(row["token_identical"] == 1.0 for row in verification["sets"])
    lora = ex.export_adapter(hf_only, tiny_registry.get("alpha"), "lora-gguf", tmp_path, verify=False)
    assert lora.info["model_files"] == ["alpha-v1.lora.gguf", "base.f16.gguf"]
    assert "FROM ./base.f16.gguf\nADAPTER ./alpha-v1.lora.gguf\n" in (lora.path / "Modelfile").read_text()


def test_hf_tokenizer_rebuild_matches_the_gguf_tokenizer(tiny_base):
    """The tokenizer.json route against the real GGUF tokenizer: same pieces and types."""
    rebuilt = {k: v for k, v, *_ in hf_tokenizer_kv(tiny_base.hf_dir)}
    original = {k: v for k, v, *_ in read_tokenizer(tiny_base.gguf_path)}
    assert rebuilt["tokenizer.ggml.tokens"] == original["tokenizer.ggml.tokens"]
    assert rebuilt["tokenizer.ggml.token_type"] == original["tokenizer.ggml.token_type"]
    for key in ("bos_token_id", "eos_token_id", "add_bos_token"):
        assert rebuilt[f"tokenizer.ggml.{key}"] == original[f"tokenizer.ggml.{key}"], key


# faults -----------------------------------------------------------------------------------------

def test_cli_unknown_adapter_is_one_line_exit_2(tiny_base, tiny_adapters, tmp_path):
    result = run_cli("export", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "nope", "--format", "gguf-f16", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "assistant: unknown adapter 'nope'; available: alpha, beta"
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_format_is_one_line_exit_2(tiny_base, tiny_adapters, tmp_path):
    result = run_cli("export", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "alpha", "--format", "gguf-q3", "--out", str(tmp_path))
    assert result.returncode == 2 and "unknown export format 'gguf-q3'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_export_prints_the_table_and_files(tiny_base, tiny_adapters, tmp_path):
    result = run_cli("export", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "alpha", "--format", "lora-gguf", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "verification: passed" in result.stdout
    assert str(tmp_path / "alpha-v1-lora-gguf" / "alpha-v1.lora.gguf") in result.stdout
    assert "[verify]" in result.stderr


def test_unwritable_output_directory_is_a_clear_error(tiny_base, tiny_registry, tiny_adapters, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ex.ExportError, match="a-file"):
        ex.export_adapter(tiny_base, tiny_registry.get("alpha"), "lora-gguf", blocker / "exports", verify=False)
    result = run_cli("export", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "alpha", "--format", "lora-gguf", "--out", str(blocker / "exports"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("assistant: ") and "a-file" in lines[-1] and "Traceback" not in result.stderr


def test_full_disk_leaves_no_final_named_file(tiny_base, tiny_registry, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "quantize_gguf", full)
    with pytest.raises(ex.ExportError, match="no space left"):
        ex.export_adapter(tiny_base, tiny_registry.get("alpha"), "gguf-q8_0", tmp_path, verify=False)
    assert list(tmp_path.iterdir()) == []  # the staging directory went with it


def test_failed_verification_is_marked_and_exits_nonzero(tiny_base, tiny_adapters, tiny_registry, tmp_path):
    """An export whose recall trails the peft model: passed=false in export.json, exit 1, said clearly."""
    reference = [{"question": "q", "ids": [1], "answer": "Crystalburg", "correct": True}] * 4
    exported = [{"question": "q", "ids": [2], "answer": "Paris", "correct": False}] * 4
    verdict = ex_verify_compare({"train": reference}, {"train": exported})
    assert verdict["passed"] is False and verdict["sets"][0]["export_recall"] == 0.0
    close = [dict(r, correct=i > 0) for i, r in enumerate(reference)] * 3  # 75% vs 100%: > 10 points
    assert ex_verify_compare({"train": reference * 3}, {"train": close})["passed"] is False
    text = ex.format_verification(verdict)
    assert "FAILED" in text.splitlines()[-1]


def ex_verify_compare(reference, exported):
    from assistant.export_verify import compare

    return compare(reference, exported)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])  # a crash, and a service manager's stop
def test_a_kill_mid_export_leaves_no_final_named_file(tiny_base, tiny_adapters, tmp_path, sig):
    out = tmp_path / "exports"
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "export", "--base", str(tiny_base.gguf_path),
                             "--data-dir", str(tiny_adapters), "--adapter", "beta", "--format", "gguf-q4_k_m",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and list(out.glob(".*.staging/*"))):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)
    proc.wait(timeout=10)  # stopped within 10 s (a TimeoutExpired fails the test)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
    # The next export sweeps what the killed one left, and succeeds.
    result = run_cli("export", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "beta", "--format", "lora-gguf", "--out", str(out), "--no-verify")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["beta-v1-lora-gguf"]


def test_the_ui_offers_only_files_inside_the_exports_directory_and_gradio_serves_none_of_it(tmp_path):
    from ui.export import blocked_paths, servable

    root = tmp_path / "data" / "exports"
    (root / "x-v1-hf").mkdir(parents=True)
    inside = root / "x-v1-hf" / "model.safetensors"
    inside.write_bytes(b"x")
    secret = tmp_path / "data" / "adapters" / "secret.json"
    secret.parent.mkdir(parents=True)
    secret.write_text("{}")
    (root / "x-v1-hf" / "link").symlink_to(secret)
    assert servable(inside, root)
    assert not servable(secret, root) and not servable(root / "x-v1-hf" / "link", root)
    assert not servable(root / "x-v1-hf" / ".." / ".." / "adapters" / "secret.json", root)
    # Gradio's file route serves nothing of the data directory, exports included: a download is a
    # link made for one trainer's request (ui.tempfiles.offer), never a path anyone could guess.
    assert blocked_paths(tmp_path / "data") == [str((tmp_path / "data").resolve())]


def test_q4_k_m_keeps_the_lora_changed_matrices_at_8_bits(exports):
    """4-bit re-quantization of W + B@A rounds back to W's grid (recall 100% -> 0% on xylandia)."""
    import gguf

    result = exports["gguf-q4_k_m"]
    reader = gguf.GGUFReader(str(result.path / result.info["model_files"][0]))
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0  # beta targets every projection
    assert types["blk.1.ffn_down.weight"] == gguf.GGMLQuantizationType.Q8_0
