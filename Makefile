# Two commands on a fresh machine: `make demo` (main job) and `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (a local file on our machines; on others pip downloads it). Override for CUDA.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all
DEMO_DATA_DIR ?= .diver

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export ANONYMIZED_TELEMETRY := False
export LANGGRAPH_CLI_NO_ANALYTICS := 1

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	echo "$(TORCH_SPEC)" > $(VENV)/torch-constraint.txt
	$(VENV)/bin/uv pip install -q --python $(PY) -c $(VENV)/torch-constraint.txt -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	DIVER_DATA_DIR=$${DIVER_DATA_DIR:-$(DEMO_DATA_DIR)} $(VENV)/bin/diver demo

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q -rs -p no:cacheprovider

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(DEMO_DATA_DIR) .pytest_cache .ruff_cache
