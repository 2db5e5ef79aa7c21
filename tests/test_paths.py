"""Compiled things in the shared cache are kept per CPU: the key, and that every user of it agrees.

The wheel and llama-server are built -march=native; one built on a CPU with AMX dies with SIGILL on
one without. The Makefile, scripts/build_llama_server.sh and the app each find them by cpu_key().
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.engines.llama_server import default_binary
from assistant.paths import REPO_ROOT, cpu_key

XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n"


def _key(tmp_path, text: str) -> str:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    return cpu_key(cpuinfo)


@pytest.mark.parametrize("other, same", [
    ("flags\t: amx_tile avx512f avx2 sse2 fpu\n", True),  # the same instructions, in another order
    ("flags\t: fpu sse2 avx2 avx512f amx_tile amx_tile\n", True),  # a flag said twice
    ("flags\t: fpu sse2 avx2 avx512f\n", False),  # no AMX: a build that uses it would crash here
    ("flags\t: fpu sse2 avx2 avx512f amx_tile avx512_fp16\n", False),  # more: the Xeon's build would not use it
    ("Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n", False),  # arm64 says "Features"
    ("", False),  # nothing to read: the architecture alone
])
def test_the_key_changes_with_the_instruction_set_and_nothing_else(tmp_path, other, same):
    assert (_key(tmp_path, XEON) == _key(tmp_path, other)) is same


def test_a_machine_without_proc_still_gets_a_key(tmp_path):
    key = cpu_key(tmp_path / "no-such-cpuinfo")
    assert key and "/" not in key and key == cpu_key(tmp_path / "no-such-cpuinfo")


def test_the_build_script_and_the_app_agree_where_llama_server_is(monkeypatch, tmp_path):
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    # How the Makefile and scripts/build_llama_server.sh compute it: before any venv exists.
    printed = subprocess.run([sys.executable, str(REPO_ROOT / "assistant" / "paths.py")],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert printed == cpu_key()
    assert default_binary().parent == tmp_path / "bin" / printed
