# Offline DeAR-L: SmolLM2-135M-Instruct reranks the MiniLM pointwise runs, zero-shot and
# after LoRA fine-tuning on listwise windows ranked by qrels; then a report.
#
#   make listwise-offline        every step below, NovelEval (the smallest set) first
#   make listwise-zero-shot      SmolLM2 as released on NovelEval, DL19 and 50 SciFact queries
#   make listwise-data           fine-tuning rows: SciFact-train and DL21 windows ranked by qrels
#   make listwise-finetune       LoRA fine-tuning, checkpointed (LWO_TRAIN_STEPS, LWO_TRAIN_MINUTES)
#   make listwise-finetuned      the fine-tuned model on the three sets
#   make listwise-first-token    first-token ranking against generation on the same windows
#   make listwise-report         parse rates, nDCG@10 and first-token cost from what exists
#
# Every step writes a file that marks it done, so a rerun skips finished steps. An interrupted
# rerank resumes from OUTPUT.partial.jsonl (saved every LWO_CHUNK queries), and an interrupted
# fine-tuning resumes from its last checkpoint (every LWO_SAVE_STEPS steps). Each step logs to
# the .log file beside its output. A long session in the background:
#
#   nohup nice -n 10 make listwise-offline > runs/listwise-offline/make.log 2>&1 &
#
# The pointwise inputs runs/{noveleval,dl19,scifact}.bm25.minilm.trec come from the table
# targets: make noveleval dl19 scifact MODEL_P=minilm MODEL_L=   (or add MODEL_P=minilm here).
# Uses PY, INSTALLED and DEAR_IR_DATA from the Makefile, INDEXES and SCIFACT_DATA from
# firststage.mk.

LWO := runs/listwise-offline
LWO_MODEL ?= smollm2
# Small enough for a CPU: 3 windows per query ([10, 20), [5, 15), [0, 10)).
LWO_WINDOW ?= 10
LWO_STEP ?= 5
LWO_RANK_END ?= 20
LWO_MAX_WORDS ?= 100
# A clean ranking of 10 passages is 40 SmolLM2 tokens plus the end-of-turn token, because
# its tokenizer writes each digit as a token. Longer answers are cut at this limit and
# parsed as they are.
LWO_MAX_NEW_TOKENS ?= 80
LWO_CHUNK ?= 4
# One window per forward pass: a batch of prompts needs a padding mask, which sends SDPA to
# its masked kernel, about half as fast on a CPU as the causal one for 1,800-token prompts
# (4 prompts, one layer, one thread: 0.47 against 0.27 s).
LWO_BATCH ?= 1
# bfloat16 runs matrix products about twice as fast as float32 on CPUs with AVX512-BF16 or
# AMX (and on GPUs); set LWO_DTYPE=float32 and LWO_BF16=no where the CPU lacks them.
LWO_DTYPE ?= bfloat16
LWO_BF16 ?= yes
# First-token ranking reads one token per identifier after "[", and SmolLM2 splits "10"
# into "1" "0", so its windows hold at most 9 passages (dear_ir.listwise.first_token).
LWO_FT_WINDOW ?= 9
LWO_FT_STEP ?= 4
LWO_FIRST_TOKEN_SETS ?= noveleval
# zero-shot or fine-tuned: the model that both sides of the first-token comparison use
LWO_FIRST_TOKEN_MODEL ?= fine-tuned
# Fine-tuning: LoRA on the last LWO_LORA_LAYERS of SmolLM2's 30 layers (the backward pass
# stops there), 4 rows per optimizer step: 80 steps (320 of the 951 rows) take about 50
# minutes on one core in bf16. Raising LWO_TRAIN_STEPS later continues from the
# last checkpoint with a new cosine schedule, and the fine-tuned runs are then made again.
# LWO_TRAIN_MINUTES, when set, stops one training process early with a checkpoint.
LWO_LORA_LAYERS ?= 8
LWO_TRAIN_STEPS ?= 80
LWO_TRAIN_MINUTES ?=
LWO_LEARNING_RATE ?= 5e-4
LWO_SAVE_STEPS ?= 2

LWO_SETS := noveleval dl19 scifact50
# rank_llm's BM25 top 100 of the TREC DL topics, with passage text
LWO_BM25_CANDIDATES := $(DEAR_IR_DATA)/rankllm-retrieve-results/BM25
LWO_GENERATION := --window $(LWO_WINDOW) --step $(LWO_STEP) --rank-end $(LWO_RANK_END) \
	--max-words $(LWO_MAX_WORDS) --max-new-tokens $(LWO_MAX_NEW_TOKENS)
LWO_FIRST_TOKEN := --window $(LWO_FT_WINDOW) --step $(LWO_FT_STEP) --rank-end $(LWO_RANK_END) \
	--max-words $(LWO_MAX_WORDS) --max-new-tokens $(LWO_MAX_NEW_TOKENS)
LWO_RERANK = $(PY) -m dear_ir.rerank --stage listwise --no-progress --dtype $(LWO_DTYPE) \
	--chunk-queries $(LWO_CHUNK) --listwise-batch-size $(LWO_BATCH)
LWO_FINETUNED := $(LWO)/smollm2-finetuned
# Marks a fine-tuning that reached LWO_TRAIN_STEPS steps.
LWO_TRAINED := $(LWO_FINETUNED)/trained-$(LWO_TRAIN_STEPS)-steps

# Per set: the pointwise input run, the topics and passage source, and the qrels.
lwo_input_noveleval := runs/noveleval.bm25.minilm.trec
lwo_source_noveleval := --topics $(DEAR_IR_DATA)/noveleval-2306/queries.tsv --corpus $(DEAR_IR_DATA)/noveleval-2306/data.json
lwo_qrels_noveleval := $(DEAR_IR_DATA)/noveleval-2306/qrels.txt
lwo_input_dl19 := runs/dl19.bm25.minilm.trec
lwo_source_dl19 := --topics $(DEAR_IR_DATA)/dl19-passage/topics.dl19-passage.txt --corpus $(LWO_BM25_CANDIDATES)/retrieve_results_dl19.json
lwo_qrels_dl19 := $(DEAR_IR_DATA)/dl19-passage/qrels.dl19-passage.txt
lwo_input_scifact50 := $(LWO)/scifact50.minilm.trec
lwo_source_scifact50 := --topics $(SCIFACT_DATA)/topics.beir-v1.0.0-scifact.test.tsv.gz --index $(INDEXES)/beir-scifact
lwo_qrels_scifact50 := $(SCIFACT_DATA)/qrels.beir-v1.0.0-scifact.test.txt
lwo_model_zero-shot := $(LWO_MODEL)
lwo_model_fine-tuned := $(LWO_FINETUNED)

.PHONY: listwise-offline listwise-zero-shot listwise-data listwise-finetune listwise-finetuned \
	listwise-first-token listwise-report

# The cheapest set first, so that a short session ends with a complete comparison on it.
listwise-offline: $(LWO)/noveleval.zero-shot.trec listwise-data listwise-finetune \
	$(LWO)/noveleval.fine-tuned.trec listwise-first-token \
	$(LWO)/dl19.zero-shot.trec $(LWO)/dl19.fine-tuned.trec \
	$(LWO)/scifact50.zero-shot.trec $(LWO)/scifact50.fine-tuned.trec
	@$(MAKE) --no-print-directory listwise-report

listwise-zero-shot: $(foreach set,$(LWO_SETS),$(LWO)/$(set).zero-shot.trec)
listwise-finetuned: $(foreach set,$(LWO_SETS),$(LWO)/$(set).fine-tuned.trec)
listwise-first-token: $(foreach set,$(LWO_FIRST_TOKEN_SETS),\
	$(LWO)/$(set).$(LWO_FIRST_TOKEN_MODEL).w$(LWO_FT_WINDOW).trec \
	$(LWO)/$(set).$(LWO_FIRST_TOKEN_MODEL).w$(LWO_FT_WINDOW).first-token.trec)

# The first 50 SciFact test queries in topic-file order, with their pointwise hits.
$(LWO)/scifact50.minilm.trec: runs/scifact.bm25.minilm.trec
	mkdir -p $(LWO)
	zcat $(SCIFACT_DATA)/topics.beir-v1.0.0-scifact.test.tsv.gz | head -n 50 | cut -f1 > $(@:.trec=.qids)
	awk 'NR == FNR { keep[$$1] = 1; next } $$1 in keep' $(@:.trec=.qids) $< > $@.tmp
	mv $@.tmp $@

# A partial run made with an earlier fine-tuning is deleted, because resuming it would mix
# two models under the same model path.
lwo_drop_stale_partial = if [ -f $$@.partial.jsonl ] && [ $$@.partial.jsonl -ot $(LWO_TRAINED) ]; then rm $$@.partial.jsonl; fi

# $(1): set, $(2): zero-shot or fine-tuned. A failed step shows the end of its log.
define lwo_rerank_rules
$(LWO)/$(1).$(2).trec: $(lwo_input_$(1)) $(if $(filter fine-tuned,$(2)),$(LWO_TRAINED)) | $(INSTALLED)
	mkdir -p $(LWO)
	$(if $(filter fine-tuned,$(2)),$(lwo_drop_stale_partial))
	$(LWO_RERANK) --model $(lwo_model_$(2)) --input $$< $(lwo_source_$(1)) $(LWO_GENERATION) \
		--output $$@ --reasoning-output $$(@:.trec=.reasoning.jsonl) >> $$(@:.trec=.log) 2>&1 \
		|| { tail -n 20 $$(@:.trec=.log); exit 1; }

$(LWO)/$(1).$(2).w$(LWO_FT_WINDOW).trec: $(lwo_input_$(1)) $(if $(filter fine-tuned,$(2)),$(LWO_TRAINED)) | $(INSTALLED)
	mkdir -p $(LWO)
	$(if $(filter fine-tuned,$(2)),$(lwo_drop_stale_partial))
	$(LWO_RERANK) --model $(lwo_model_$(2)) --input $$< $(lwo_source_$(1)) $(LWO_FIRST_TOKEN) \
		--output $$@ --reasoning-output $$(@:.trec=.reasoning.jsonl) >> $$(@:.trec=.log) 2>&1 \
		|| { tail -n 20 $$(@:.trec=.log); exit 1; }

$(LWO)/$(1).$(2).w$(LWO_FT_WINDOW).first-token.trec: $(lwo_input_$(1)) $(if $(filter fine-tuned,$(2)),$(LWO_TRAINED)) | $(INSTALLED)
	mkdir -p $(LWO)
	$(if $(filter fine-tuned,$(2)),$(lwo_drop_stale_partial))
	$(LWO_RERANK) --model $(lwo_model_$(2)) --input $$< $(lwo_source_$(1)) $(LWO_FIRST_TOKEN) --first-token \
		--output $$@ --reasoning-output $$(@:.trec=.reasoning.jsonl) >> $$(@:.trec=.log) 2>&1 \
		|| { tail -n 20 $$(@:.trec=.log); exit 1; }
endef
$(foreach set,$(LWO_SETS),$(foreach model,zero-shot fine-tuned,$(eval $(call lwo_rerank_rules,$(set),$(model)))))

# Fine-tuning rows: windows of the same shape as reranking, over the BM25 top 20, shuffled
# before numbering and ranked by the qrels grades.
$(LWO)/train.scifact.jsonl: runs/bm25.beir-scifact-train.trec | $(INSTALLED)
	mkdir -p $(LWO)
	$(PY) -m dear_ir.listwise.data --input $< --topics $(SCIFACT_DATA)/queries.train.derived.tsv \
		--corpus $(SCIFACT_DATA)/corpus.jsonl --qrels $(SCIFACT_DATA)/qrels.train.derived.txt \
		--window $(LWO_WINDOW) --step $(LWO_STEP) --rank-end $(LWO_RANK_END) --max-words $(LWO_MAX_WORDS) \
		--shuffle --output $@ >> $(@:.jsonl=.log) 2>&1

$(LWO)/train.dl21.jsonl: | $(INSTALLED)
	mkdir -p $(LWO)
	$(PY) -m dear_ir.listwise.data --input $(LWO_BM25_CANDIDATES)/trec_results_dl21.txt \
		--topics $(LWO_BM25_CANDIDATES)/retrieve_results_dl21.json --corpus $(LWO_BM25_CANDIDATES)/retrieve_results_dl21.json \
		--qrels $(DEAR_IR_DATA)/dl21-passage/qrels.dl21-passage.txt \
		--window $(LWO_WINDOW) --step $(LWO_STEP) --rank-end $(LWO_RANK_END) --max-words $(LWO_MAX_WORDS) \
		--shuffle --output $@ >> $(@:.jsonl=.log) 2>&1

# The trainer shuffles the rows, so the two sources mix.
$(LWO)/train.jsonl: $(LWO)/train.scifact.jsonl $(LWO)/train.dl21.jsonl
	cat $^ > $@.tmp
	mv $@.tmp $@

listwise-data: $(LWO)/train.jsonl

# --overwrite trains past a finished student: training resumes from the last checkpoint and
# runs to LWO_TRAIN_STEPS.
$(LWO_TRAINED): $(LWO)/train.jsonl
	$(PY) -m dear_ir.train listwise --data $< --model $(LWO_MODEL) --output $(LWO_FINETUNED) \
		--lora-layers $(LWO_LORA_LAYERS) --learning-rate $(LWO_LEARNING_RATE) --max-steps $(LWO_TRAIN_STEPS) \
		$(if $(LWO_TRAIN_MINUTES),--max-minutes $(LWO_TRAIN_MINUTES)) \
		--rows-per-step 1 --gradient-accumulation 4 --max-length 4096 --bf16 $(LWO_BF16) \
		--save-steps $(LWO_SAVE_STEPS) --logging-steps 1 --no-progress --overwrite \
		>> $(LWO)/finetune.log 2>&1 || { tail -n 20 $(LWO)/finetune.log; exit 1; }
	$(PY) -c 'import json, sys; steps = json.load(open(sys.argv[1]))["steps"]; sys.exit(steps < $(LWO_TRAIN_STEPS))' \
		$(LWO_FINETUNED)/dear_ir.json || { echo "fine-tuning stopped before $(LWO_TRAIN_STEPS) steps; run make again to go on"; exit 1; }
	touch $@

listwise-finetune: $(LWO_TRAINED)

listwise-report: | $(INSTALLED)
	@$(PY) -m dear_ir.listwise.report \
		$(foreach set,$(LWO_SETS),--set $(set) $(lwo_qrels_$(set)) $(lwo_input_$(set)) \
			$(LWO)/$(set).zero-shot.trec $(LWO)/$(set).fine-tuned.trec) \
		$(foreach set,$(LWO_FIRST_TOKEN_SETS),--first-token $(set) $(lwo_qrels_$(set)) \
			$(LWO)/$(set).$(LWO_FIRST_TOKEN_MODEL).w$(LWO_FT_WINDOW).trec \
			$(LWO)/$(set).$(LWO_FIRST_TOKEN_MODEL).w$(LWO_FT_WINDOW).first-token.trec) \
		--relevance-level dl19=2 --output $(LWO)/report.md

.SECONDARY: $(LWO)/train.scifact.jsonl $(LWO)/train.dl21.jsonl
