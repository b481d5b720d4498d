# The DeAR paper's tables: BM25 -> DeAR-P -> DeAR-L -> evaluation per collection, then the
# published numbers beside the measured ones.
#
#   make dl19 dl20            TREC DL 2019 and 2020 passage
#   make beir                 the paper's eight BEIR collections (covid nfc touche dbpedia scifact news robust04 signal)
#   make noveleval            NovelEval-2306
#   make tables               every table from the runs that exist (also written to $(RUNS)/tables.md)
#   make dl19 MODEL_P=minilm MODEL_L=       a small offline model and no listwise stage
#   python -m dear_ir.collections dl20 --check   which offline files a collection has
#
# Each run is $(RUNS)/COLLECTION.bm25[.P[.L]].trec with RUN.meta.json beside it (the command and
# library versions); P and L are the last path parts of MODEL_P and MODEL_L. A run that exists
# is not made again, so after changing another setting (HITS, WINDOW, ...) delete the run or use make -B.
#
# Uses PY, INSTALLED, INDEXES and THREADS from the Makefile and mk/firststage.mk.

MODEL_P ?= dear-p-8b
MODEL_L ?= dear-l-8b
# auto: the offline files of DEAR_IR_DATA when that folder exists, else Pyserini's prebuilt
# indexes, topics and qrels (downloaded on first use); offline or online forces one of them.
SOURCE ?= auto
# auto: cuda when a GPU is visible, else cpu; bfloat16 on a GPU, the stored dtype on a CPU.
DEVICE ?= auto
DTYPE ?= auto
# The reference pipeline: BM25 top 100, DeAR-P over all of them, then DeAR-L over the top 30
# in windows of 20 passages moved by 10, sampling at temperature 0.5 and top-p 0.9.
HITS ?= 100
RANK_END ?= 30
WINDOW ?= 20
STEP ?= 10
TEMPERATURE ?= 0.5
TOP_P ?= 0.9
SEED ?= 0
SAMPLE ?= --sample
# More options for python -m dear_ir.rerank, e.g. P_ARGS='--batch-size 16'.
P_ARGS ?=
L_ARGS ?=
# stop: a collection whose files are missing stops make and names them; skip: it is left
# out of the table with the reason (make beir skips, so the other collections still run).
ON_MISSING ?= stop

# Folder of the runs; another folder keeps exploratory runs apart from the table's.
RUNS ?= runs

BEIR_COLLECTIONS := covid nfc touche dbpedia scifact news robust04 signal
TABLE_COLLECTIONS := dl19 dl20 noveleval nq $(BEIR_COLLECTIONS)

model_tag = $(notdir $(patsubst %/,%,$(1)))
P_SUFFIX := $(if $(MODEL_P),.$(call model_tag,$(MODEL_P)))
L_SUFFIX := $(if $(and $(MODEL_P),$(MODEL_L)),.$(call model_tag,$(MODEL_L)))
final_run = $(RUNS)/$(1).bm25$(P_SUFFIX)$(L_SUFFIX).trec

# The Makefile turns the Hugging Face hub off for its bundled models; the DeAR checkpoints
# come from the hub, so the rerank steps may download them unless the user set HF_HUB_OFFLINE.
HUB_DOWNLOAD := $(if $(filter file,$(origin HF_HUB_OFFLINE)),--allow-hub-download)

PIPELINE = $(PY) -m dear_ir.pipeline
STEP_OPTIONS = --source $(SOURCE) --indexes $(INDEXES) --on-missing $(ON_MISSING)
RERANK_OPTIONS = $(STEP_OPTIONS) --device $(DEVICE) --dtype '$(DTYPE)' $(HUB_DOWNLOAD)
TABLES = $(PY) -m dear_ir.tables --runs $(RUNS) --source $(SOURCE) --model-p '$(MODEL_P)' --model-l '$(MODEL_L)'

.PHONY: $(TABLE_COLLECTIONS) beir tables

$(TABLE_COLLECTIONS): %: $(call final_run,%)
	@$(TABLES) --collections $@

beir: ON_MISSING = skip
beir: $(foreach collection,$(BEIR_COLLECTIONS),$(call final_run,$(collection)))
	@$(TABLES) --collections $(BEIR_COLLECTIONS)

tables: | $(INSTALLED)
	@$(TABLES) --output $(RUNS)/tables.md

$(RUNS)/%.bm25.trec: | $(INSTALLED)
	$(PIPELINE) first-stage $* --output $@ --hits $(HITS) --threads $(THREADS) $(STEP_OPTIONS)

$(RUNS)/%.bm25$(P_SUFFIX).trec: $(RUNS)/%.bm25.trec
	$(PIPELINE) rerank $* --stage pointwise --model '$(MODEL_P)' --input $< --output $@ $(RERANK_OPTIONS) -- $(P_ARGS)

$(RUNS)/%.bm25$(P_SUFFIX)$(L_SUFFIX).trec: $(RUNS)/%.bm25$(P_SUFFIX).trec
	$(PIPELINE) rerank $* --stage listwise --model '$(MODEL_L)' --input $< --output $@ $(RERANK_OPTIONS) -- \
		--rank-end $(RANK_END) --window $(WINDOW) --step $(STEP) $(SAMPLE) \
		--temperature $(TEMPERATURE) --top-p $(TOP_P) --seed $(SEED) $(L_ARGS)

# Runs made by the pattern rules above are results, not intermediate files for make to delete.
.SECONDARY: $(foreach collection,$(TABLE_COLLECTIONS),$(RUNS)/$(collection).bm25.trec $(RUNS)/$(collection).bm25$(P_SUFFIX).trec)
