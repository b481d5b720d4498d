# First stage: a Lucene index of a corpus file and its BM25 run.
#
#   make bm25-scifact   index the SciFact corpus, retrieve the top 100 for the test topics
#                       and evaluate (expected: nDCG@10 0.6789, R@100 0.9253)
#
# Uses PY and DEAR_IR_DATA from the Makefile.

INDEXES ?= indexes
THREADS ?= $(shell nproc 2>/dev/null || echo 1)
SCIFACT_DATA := $(DEAR_IR_DATA)/beir-scifact

.PHONY: bm25-scifact

# The index folder's own timestamp marks a finished build, because
# dear_ir.index renames the folder into place only when indexing succeeded.
$(INDEXES)/beir-scifact: $(SCIFACT_DATA)/corpus.jsonl | $(INSTALLED)
	$(PY) -m dear_ir.index --corpus $< --index $@ --threads $(THREADS) --overwrite

runs/bm25.beir-scifact.trec: $(INDEXES)/beir-scifact
	$(PY) -m dear_ir.bm25 --index $< --topics $(SCIFACT_DATA)/topics.beir-v1.0.0-scifact.test.tsv.gz \
		--output $@ --hits 100 --threads $(THREADS)

bm25-scifact: runs/bm25.beir-scifact.trec
	$(PY) -m dear_ir.evaluate $< --qrels $(SCIFACT_DATA)/qrels.beir-v1.0.0-scifact.test.txt \
		--metrics ndcg_cut_10 recall_100
