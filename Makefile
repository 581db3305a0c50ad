# Two commands on a fresh machine: `make demo` (main job) and `make test` (the test suite).
# Installs are reproducible: uv.lock pins every package (`uv sync --frozen`); `make upgrade` re-resolves.
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION ?= 0.13.9
# CPU build of torch (a local file on our machines; on others pip downloads it). Override for CUDA:
# `make setup TORCH_SPEC=torch`. torch is kept out of uv.lock (pyproject [tool.uv]) so uv never replaces it.
TORCH_SPEC ?= torch==2.13.0
# Where that CPU wheel lies on disk (our machines), uv installs the file itself: 4x faster than pip
# (--no-config: the project's own [tool.uv] override would drop torch).
TORCH_WHEEL := $(if $(filter torch==2.13.0,$(TORCH_SPEC)),$(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-cp311-*.whl)))
DEMO_DATA_DIR ?= .diver
# Extras of the quick first run (retrieval, the deep-search graph, the MCP server of `diver serve`); the
# local LLM comes after, in the background; `make setup` installs every extra (what `make test` needs).
CORE_EXTRAS := --extra local --extra llm --extra mcp
LLM_EXTRAS := $(CORE_EXTRAS) --extra local-llm
# Bumped when the llama.cpp build settings change: an older venv then rebuilds llama-cpp-python.
LLM_BUILD := x86-64-v3
SYNC = UV_PROJECT_ENVIRONMENT=$(VENV) flock $(VENV)/.install.lock $(UV) sync --frozen --inexact --no-progress
LLM_MARKER := $(VENV)/.installed-llm-$(LLM_BUILD)
LLM_LOG := $(VENV)/llm-install.log

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export ANONYMIZED_TELEMETRY := False
export LANGGRAPH_CLI_NO_ANALYTICS := 1

.PHONY: setup setup-core setup-llm llm-background demo test lint bench lock upgrade clean

setup: $(VENV)/.installed-all
setup-core: $(VENV)/.installed-core
setup-llm: $(LLM_MARKER)

# venv + uv + torch (pip: it finds the local CPU wheel; uv would not) + the core extras from uv.lock. Re-run when
# the Makefile changes too: a venv from an older `make demo` gets the extras added since (e.g. mcp).
$(VENV)/.installed-core: pyproject.toml uv.lock Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(if $(TORCH_WHEEL),$(UV) pip install --no-config -q --python $(PY) "torch @ file://$(TORCH_WHEEL)",$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)")
	$(SYNC) $(CORE_EXTRAS)
	touch $@

# the local test LLM: llama-cpp-python built from source for a fixed baseline (pyproject
# [tool.uv.config-settings-package]; uv caches that build apart from others). A venv holding a build made
# with other settings (no $(VENV)/.llm-build stamp, or another one) gets it rebuilt.
$(LLM_MARKER): $(VENV)/.installed-core
	rm -f $(VENV)/.llm-install-failed
	$(SYNC) $(LLM_EXTRAS) $$(test -d $(VENV)/lib/python*/site-packages/llama_cpp \
	  && [ "$$(cat $(VENV)/.llm-build 2>/dev/null)" != "$(LLM_BUILD)" ] && echo --reinstall-package llama-cpp-python)
	echo "$(LLM_BUILD)" > $(VENV)/.llm-build
	touch $@

$(VENV)/.installed-all: $(LLM_MARKER)
	$(SYNC) --all-extras
	touch $@

# starts the local-LLM install in the background (low priority) unless it is there or under way
llm-background: setup-core
	@if [ -f $(LLM_MARKER) ]; then :; \
	elif [ -f $(VENV)/.llm-install.pid ] && kill -0 $$(cat $(VENV)/.llm-install.pid) 2>/dev/null; then \
	  echo "the local test LLM is being installed in the background (log: $(LLM_LOG))"; \
	else \
	  echo "installing the local test LLM in the background (log: $(LLM_LOG))"; \
	  ( nice -n 10 $(MAKE) --no-print-directory setup-llm >$(LLM_LOG) 2>&1 \
	    || touch $(VENV)/.llm-install-failed ) </dev/null & echo $$! > $(VENV)/.llm-install.pid; \
	fi

# retrieval starts at once; the deep-search part waits for the background LLM install (marker file)
demo: llm-background
	DIVER_DATA_DIR=$${DIVER_DATA_DIR:-$(DEMO_DATA_DIR)} DIVER_DEMO_LLM_READY=$(LLM_MARKER) \
	  DIVER_DEMO_LLM_FAILED=$(VENV)/.llm-install-failed DIVER_DEMO_LLM_LOG=$(LLM_LOG) $(VENV)/bin/diver demo

# ruff; the import contracts of pyproject [tool.importlinter] (layers point down, no circles) on the installed
# layout; mypy over diver/ (strict, see [tool.mypy]).
lint: setup
	$(VENV)/bin/ruff check .
	$(PY) scripts/lint_imports.py
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest -q -rs -p no:cacheprovider

bench: setup
	$(PY) -m benchmarks.run

# after changing dependencies in pyproject.toml: re-resolve only what changed (commit uv.lock with it)
lock:
	test -x $(UV) || $(MAKE) setup-core
	$(UV) lock

# scheduled-style: re-resolve every dependency to the newest allowed by pyproject.toml, reinstall, test.
# Commit the new uv.lock only when the tests pass.
upgrade:
	test -x $(UV) || $(MAKE) setup-core
	$(UV) lock --upgrade
	$(MAKE) test

clean:
	rm -rf $(VENV) $(DEMO_DATA_DIR) .pytest_cache .ruff_cache
