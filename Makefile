# One command to set up and serve (`make run`), one to set up and test (`make test`).
# Expensive things are cached outside the checkout, so fresh clones on this machine reuse them:
#   $(CACHE)/wheels/$(CPU_KEY)  the compiled llama-cpp-python wheel (no binary wheel exists; ~6 min to build)
#   $(CACHE)/base, hf           the assembled embedded GGUF and its converted HF copy (~2 min to convert)
#   $(CACHE)/bin/$(CPU_KEY)     llama.cpp's llama-server, built by `make llama-server` from the same sources
# Both compiled things are -march=native, so they are kept per CPU_KEY (the instruction set's hash,
# assistant/paths.py): a cache shared by different CPUs never runs one's build on the other.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  ?= $(or $(ASSISTANT_CACHE_DIR),$(HOME)/.cache/lora-assistant)
CPU_KEY := $(shell $(PYTHON) assistant/paths.py)
WHEELS := $(CACHE)/wheels/$(CPU_KEY)
LLAMA  := llama-cpp-python==0.3.36
STAMP  := $(VENV)/.installed
BASE_STAMP := $(CACHE)/.base-provisioned
PYTEST_ARGS ?=
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast bench bench-shipped lint adapters browser clean llama-server

setup: $(STAMP) $(BASE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || { \
	  echo "Compiling $(LLAMA) once (about 6 minutes on 2 cores); cached in $(WHEELS)"; \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel -q --no-cache-dir --no-deps $(LLAMA) -w $(WHEELS); }
	$(BIN)/pip install -q --find-links $(WHEELS) -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

$(BASE_STAMP): $(STAMP)
	$(BIN)/assistant provision
	@mkdir -p $(dir $@) && touch $@

run: setup
	$(BIN)/assistant serve

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The llama-server tests run against the real binary, so `make test` builds it (once, 4-11 min on 2 cores).
test: setup browser llama-server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/chat.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/grounding.py
	$(BIN)/python benchmarks/embedding.py
	$(BIN)/python benchmarks/trust.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/upload_isolation.py

# Issue 17's targets on the whole shipped files, today's recipe against the new one (about an hour).
bench-shipped: setup
	$(BIN)/python benchmarks/train.py --shipped agriculture,xylandia

# Not a prerequisite of setup: only `--engine llama-server` and the llama-server tests need it (run
# alone, as `make test-fast` does, those tests skip, saying so, until it is built).
llama-server:
	PIP=$(BIN)/pip scripts/build_llama_server.sh $(CACHE)

adapters: setup
	$(BIN)/python scripts/build_adapters.py

lint: setup
	$(BIN)/ruff check assistant ui api tests benchmarks

clean:
	rm -rf $(VENV) var
