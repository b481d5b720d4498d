# Listwise stage (DeAR-L) with the offline SmolLM2-135M-Instruct, small enough for a CPU.
#
#   make listwise-smoke        rerank the BM25 top 10 of two DL19 queries in windows of 5;
#                              writes the run and the reasoning sidecar (minutes on a CPU)
#   make listwise-data-scifact fine-tuning rows from BM25 on the SciFact train queries, with
#                              the train qrels as the teacher ranking
#   make listwise-train-smoke  five LoRA steps of SmolLM2 on those rows
#
# SmolLM2 is no ranker: these targets check the pipeline, not effectiveness.
# Uses PY and DEAR_IR_DATA from the Makefile, INDEXES and SCIFACT_DATA from firststage.mk.

RANKLLM_BM25 := $(DEAR_IR_DATA)/rankllm-retrieve-results/BM25
LISTWISE_SMOKE := --window 5 --step 3 --rank-end 10 --max-new-tokens 24

.PHONY: listwise-smoke listwise-data-scifact listwise-train-smoke

# The first 200 lines of the run are its first two queries, 100 hits each.
runs/bm25.dl19.2q.trec: $(RANKLLM_BM25)/trec_results_dl19.txt
	mkdir -p runs
	head -n 200 $< > $@

runs/dl19.2q.smollm2-listwise.trec: runs/bm25.dl19.2q.trec | $(INSTALLED)
	$(PY) -m dear_ir.rerank --stage listwise --model smollm2 --input $< \
		--corpus $(RANKLLM_BM25)/retrieve_results_dl19.json --hits 10 $(LISTWISE_SMOKE) \
		--output $@ --reasoning-output $(@:.trec=.reasoning.jsonl)

listwise-smoke: runs/dl19.2q.smollm2-listwise.trec
	head -n 3 $(<:.trec=.reasoning.jsonl)

runs/bm25.beir-scifact-train.trec: $(INDEXES)/beir-scifact
	$(PY) -m dear_ir.bm25 --index $< --topics $(SCIFACT_DATA)/queries.train.derived.tsv \
		--output $@ --hits 20 --threads $(THREADS)

# Windows of 5 passages cut to 100 words keep the rows short enough for a CPU.
runs/listwise.scifact-train.jsonl: runs/bm25.beir-scifact-train.trec
	$(PY) -m dear_ir.listwise.data --input $< --topics $(SCIFACT_DATA)/queries.train.derived.tsv \
		--corpus $(SCIFACT_DATA)/corpus.jsonl --qrels $(SCIFACT_DATA)/qrels.train.derived.txt \
		--window 5 --step 5 --rank-end 5 --max-words 100 --shuffle --output $@

listwise-data-scifact: runs/listwise.scifact-train.jsonl

listwise-train-smoke: runs/listwise.scifact-train.jsonl
	$(PY) -m dear_ir.train listwise --data $< --model smollm2 --output runs/smollm2-listwise-smoke \
		--max-steps 5 --max-rows 40 --gradient-accumulation 1 --max-length 2048 --overwrite
