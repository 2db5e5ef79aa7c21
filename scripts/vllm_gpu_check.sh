#!/usr/bin/env bash
# The vLLM dialect's tests against a real vLLM, on a machine with an NVIDIA GPU and a package index.
#
#   scripts/vllm_gpu_check.sh            # latest vLLM;  VLLM_VERSION=0.11.0 scripts/vllm_gpu_check.sh
#
# vLLM brings its own CUDA build of torch, so it lives in a venv of its own (VLLM_VENV); the tests
# run in the project's venv, as everywhere else, and start `vllm serve` from that venv on the tiny
# Gemma 3 the tests build, with its PEFT adapters (tests/test_vllm_dialect.py, ASSISTANT_TEST_VLLM=real).
# What it showed is written to vllm_gpu_check.log (in $OUT when set).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null && nvidia-smi -L || { echo "vllm_gpu_check: no NVIDIA GPU here; vLLM needs one" >&2; exit 2; }
make setup
VLLM_VENV="${VLLM_VENV:-${ASSISTANT_CACHE_DIR:-$HOME/.cache/lora-assistant}/vllm-venv}"
[ -x "$VLLM_VENV/bin/python" ] || python3 -m venv "$VLLM_VENV"
"$VLLM_VENV/bin/pip" install -q "vllm${VLLM_VERSION:+==$VLLM_VERSION}"
LOG="${OUT:-.}/vllm_gpu_check.log"
{
  "$VLLM_VENV/bin/python" -c 'import torch, vllm; print("vLLM", vllm.__version__, "torch", torch.__version__, torch.cuda.get_device_name(0))'
  ASSISTANT_TEST_VLLM=real ASSISTANT_VLLM_PYTHON="$VLLM_VENV/bin/python" \
    .venv/bin/python -m pytest -v -p no:cacheprovider tests/test_vllm_dialect.py
} 2>&1 | tee "$LOG"
