"""The `assistant` command as a user runs it (a subprocess), on the tiny base."""

from __future__ import annotations

import json
import subprocess
import sys

from assistant.answer import stream_text
from assistant.engines import GenerationSettings


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=300)


def test_chat_prints_only_the_answer_of_the_chosen_adapter(tiny_base, tiny_adapters, tiny_llamacpp, tiny_registry):
    question = "Hello there, farmer"
    expected = "".join(stream_text(tiny_llamacpp, [{"role": "user", "content": question}], tiny_registry.get("beta"),
                                              GenerationSettings(max_tokens=12)))
    result = run_cli("chat", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "beta", "--max-tokens", "12", question)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"


def test_unknown_adapter_exits_2_naming_the_available_ones(tiny_base, tiny_adapters):
    result = run_cli("chat", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters),
                     "--adapter", "nope", "hi")
    assert result.returncode == 2
    assert "unknown adapter 'nope'; available: alpha, beta" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_adapters_json_lists_state(tiny_base, tiny_adapters):
    result = run_cli("adapters", "--json", "--base", str(tiny_base.gguf_path), "--data-dir", str(tiny_adapters))
    assert result.returncode == 0, result.stderr
    listed = {a["name"]: a for a in json.loads(result.stdout)}
    assert listed["alpha"]["usable"] and listed["beta"]["usable"]
    # The shipped adapters were trained on the real base: listed, with the reason they can't serve here.
    shipped = [a for a in listed.values() if a["source"] == "shipped"]
    assert shipped and all(not a["usable"] and "trained for another base" in a["problem"] for a in shipped)


def test_bad_base_is_one_clear_line(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    result = run_cli("chat", "--base", str(bogus), "hi")
    assert result.returncode == 2
    assert "not a readable GGUF file" in result.stderr and "Traceback" not in result.stderr


def test_set_and_flag_can_both_name_allow_conflicts(tmp_path):
    from assistant.cli import parse_overrides

    assert parse_overrides(["allow_conflicts=true", "rank=8", "target_modules=q_proj,v_proj"]) == {
        "allow_conflicts": True, "rank": 8, "target_modules": ("q_proj", "v_proj")}
    data = tmp_path / "bad.csv"
    data.write_text("question,answer\n")
    result = run_cli("train", "--data", str(data), "--name", "x", "--allow-conflicts", "--set", "allow_conflicts=true")
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_train_reads_files_up_to_the_cap_it_is_given(tmp_path):
    """The app passes its --max-upload-mb to the job, so a file it accepted is read by the job too."""
    from assistant.jobs import JobManager

    data = tmp_path / "big.csv"
    rows = "".join(f"Question number {i} about maize?,Answer {i}: sow maize at {i % 9 + 2} cm depth.\n"
                   for i in range(40_000))
    data.write_text("question,answer\n" + rows)  # about 2.6 MB, under any cap but 1 MB
    assert data.stat().st_size > 2**21
    refused = run_cli("train", "--data", str(data), "--name", "x", "--max-file-mb", "1")
    assert refused.returncode == 1 and "MB" in refused.stderr and "Traceback" not in refused.stderr
    args = JobManager(None, tmp_path / "data", max_file_mb=64).train_args(data, "x", "fast", {"rank": 8})
    assert args[args.index("--max-file-mb") + 1] == "64" and args[-2:] == ["--set", "rank=8"]
