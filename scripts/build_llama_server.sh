#!/usr/bin/env bash
# Build llama.cpp's `llama-server` once, from the llama.cpp sources vendored in the pinned
# llama-cpp-python sdist, so the server speaks exactly the llama.cpp the in-process engine runs.
#
# Usage: scripts/build_llama_server.sh [CACHE_DIR]
#   CACHE_DIR defaults to $ASSISTANT_CACHE_DIR, else ~/.cache/lora-assistant (as the Makefile).
#   The binary lands in CACHE_DIR/bin/<cpu key>/llama-server-<version>, beside the compiled wheel,
#   so fresh clones on this machine reuse it; if it is already there this does nothing. The cpu key
#   (assistant/paths.py) names this CPU's instruction set: the build is -march=native, and a cache
#   shared with another kind of CPU must not hand it this binary.
#
# Choices, and why:
#   - only the `llama-server` target, CPU backend only, no tests/examples/app: least to compile;
#   - static libllama/libggml (BUILD_SHARED_LIBS=OFF): the binary stands alone, no .so to find;
#   - GGML_NATIVE and GGML_OPENMP left at their defaults (ON), as the wheel's own build leaves them,
#     so both engines run the same kernels;
#   - no web UI (neither npm nor the prebuilt download), no OpenSSL, FetchContent disconnected:
#     the build needs no network, and the app only uses the HTTP API on loopback.
set -euo pipefail

VERSION=0.3.36
CACHE_DIR=${1:-${ASSISTANT_CACHE_DIR:-$HOME/.cache/lora-assistant}}
PIP=${PIP:-.venv/bin/pip}
[[ -x "$PIP" ]] || PIP="python3 -m pip"  # only `pip download` is needed, not the project venv
CPU_KEY=$(python3 "$(dirname "$0")/../assistant/paths.py")
DEST="$CACHE_DIR/bin/$CPU_KEY/llama-server-$VERSION"

if [[ -x "$DEST" ]]; then
  echo "llama-server $VERSION already built: $DEST"
  exit 0
fi

mkdir -p "$CACHE_DIR/bin/$CPU_KEY"
# The work dir sits in the cache (not /tmp) so the final `mv` is a rename on one filesystem:
# a reader sees either no binary or the whole one, never a half-copied file.
WORK=$(mktemp -d "$CACHE_DIR/bin/.build-llama-server.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

start=$(date +%s)
echo "Building llama-server $VERSION once (cached in $DEST)"
$PIP download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK/sdist"
SDIST=$(ls "$WORK"/sdist/llama_cpp_python-"$VERSION".tar.gz)
# Only the vendored llama.cpp tree is needed.
mkdir -p "$WORK/src"
tar -xzf "$SDIST" -C "$WORK/src" --strip-components=3 "llama_cpp_python-$VERSION/vendor/llama.cpp"

GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
cmake -S "$WORK/src" -B "$WORK/build" "${GENERATOR[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DGGML_CCACHE=OFF \
  >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; exit 1; }
cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1 \
  || { tail -n 60 "$WORK/build.log"; exit 1; }

BUILT="$WORK/build/bin/llama-server"
"$BUILT" --version >/dev/null 2>&1 || { echo "built llama-server does not run"; "$BUILT" --version; exit 1; }
strip -o "$WORK/llama-server" "$BUILT" 2>/dev/null || cp "$BUILT" "$WORK/llama-server"
chmod 755 "$WORK/llama-server"
mv -f "$WORK/llama-server" "$DEST"
echo "Built $DEST in $(( $(date +%s) - start )) s ($(du -h "$DEST" | cut -f1))"
