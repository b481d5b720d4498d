# Pointwise students distilled from a teacher's logits, evaluated on TREC DL19.
#
#   make student            both students below, their untrained starts, nDCG@10 and Kendall tau
#   make student-minilm     (a) all-MiniLM-L6-v2's encoder as a cross-encoder, full fine-tuning,
#                           distilled with soft RankNet on the teacher's logits plus KL
#   make student-smollm2    (b) SmolLM2-135M-Instruct with LoRA under the DeAR input convention
#   make student-ablation   (a) trained for 60 steps with CE alone, CE + KL (alpha 0.1),
#                           hybrid + KL (alpha 0.1) and soft teacher RankNet + KL (alpha 0.5)
#
# Teacher: the `minilm` bi-encoder (cosine times 20 as logit). Training queries: the
# BM25 top 100 of DL21 (positives from the DL21 qrels, grade 2 and up) and of DL22
# (no qrels here, so the teacher's best passage is the positive). Every step writes
# its own file and is skipped once that file exists; training resumes from its last
# checkpoint. Uses PY and DEAR_IR_DATA from the Makefile.
#
# The budgets (steps, groups, threads) suit a 2-core CPU: student (a) trains for 120
# steps of 8 groups of 4 passages, student (b) for STUDENT_SMOLLM2_MINUTES minutes in
# bfloat16 (STUDENT_SMOLLM2_BF16=no where the CPU lacks bf16 instructions), and scores
# the DL19 top 100 in bfloat16 too. On a GPU, raise them (and drop --threads).

STUDENT_MODELS ?= models
STUDENT_TEACHER_DIR ?= teacher
STUDENT_RUNS ?= runs/student
STUDENT_THREADS ?= 1
STUDENT_SMOLLM2_MINUTES ?= 25
STUDENT_SMOLLM2_BF16 ?= yes
STUDENT_SMOLLM2_DTYPE ?= bfloat16

BM25_RESULTS := $(DEAR_IR_DATA)/rankllm-retrieve-results/BM25
DL19_QRELS := $(DEAR_IR_DATA)/dl19-passage/qrels.dl19-passage.txt
DL19_TOPICS := $(DEAR_IR_DATA)/dl19-passage/topics.dl19-passage.txt
DL21_QRELS := $(DEAR_IR_DATA)/dl21-passage/qrels.dl21-passage.txt

TEACHER_DUMPS := $(STUDENT_TEACHER_DIR)/minilm.dl21.jsonl $(STUDENT_TEACHER_DIR)/minilm.dl22.jsonl
DUMP_OPTIONS := --model minilm --group-size 8 --max-positives 16 --min-relevance 2

# The ablation runs 60 steps. The main student (a) distils with soft RankNet on the
# teacher's logits plus KL at alpha 0.5, which did best in the ablation's budget, for
# 120 steps (about 12 minutes on one free core).
MINILM_TRAINING := --model minilm --full --learning-rate 1e-4 --head-learning-rate 1e-3 \
	--max-steps 60 --groups-per-step 8 --group-size 4 --max-length 160 --threads $(STUDENT_THREADS)
# LoRA on the last 4 of SmolLM2's 30 layers and groups of 2 (DeAR's own size) keep a
# CPU step short. In bf16 on a 2-core CPU, 200 steps took about 24 minutes, so the
# step count and the time budget end the run at about the same point.
SMOLLM2_TRAINING := --model smollm2 --lora-layers 4 --learning-rate 2e-4 --head-learning-rate 2e-3 \
	--max-steps 200 --max-minutes $(STUDENT_SMOLLM2_MINUTES) --warmup 5 \
	--groups-per-step 8 --group-size 2 --threads $(STUDENT_THREADS) --save-steps 10 --logging-steps 2 \
	--bf16 $(STUDENT_SMOLLM2_BF16)

RERANK_DL19 := $(PY) -m dear_ir.rerank --stage pointwise \
	--input $(BM25_RESULTS)/trec_results_dl19.txt --corpus $(BM25_RESULTS)/retrieve_results_dl19.json \
	--topics $(DL19_TOPICS) --no-progress

MINILM_STUDENTS := minilm-untrained minilm-distilled
SMOLLM2_STUDENTS := smollm2-untrained smollm2-hybrid-kl
ABLATION_STUDENTS := minilm-ce minilm-ce-kl minilm-hybrid-kl minilm-ranknet-teacher-kl

.PHONY: student student-minilm student-smollm2 student-ablation

# --- teacher dumps -----------------------------------------------------------

$(STUDENT_TEACHER_DIR)/minilm.dl21.jsonl: | $(INSTALLED)
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(PY) -m dear_ir.dump_teacher $(DUMP_OPTIONS) \
		--input $(BM25_RESULTS)/trec_results_dl21.txt --topics $(BM25_RESULTS)/retrieve_results_dl21.json \
		--corpus $(BM25_RESULTS)/retrieve_results_dl21.json --qrels $(DL21_QRELS) --output $@

$(STUDENT_TEACHER_DIR)/minilm.dl22.jsonl: | $(INSTALLED)
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(PY) -m dear_ir.dump_teacher $(DUMP_OPTIONS) \
		--input $(BM25_RESULTS)/trec_results_dl22.txt --topics $(BM25_RESULTS)/retrieve_results_dl22.json \
		--corpus $(BM25_RESULTS)/retrieve_results_dl22.json --output $@

# --- students ----------------------------------------------------------------
# dear_ir.json is written last, so it marks a finished student. --max-steps 0
# saves the student as initialised (same seed), the baseline it must beat.

$(STUDENT_MODELS)/minilm-untrained/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --max-steps 0 --output $(@D)

$(STUDENT_MODELS)/minilm-hybrid-kl/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --loss hybrid --alpha 0.1 --output $(@D)

$(STUDENT_MODELS)/minilm-distilled/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --max-steps 120 \
		--loss ranknet-teacher --alpha 0.5 --output $(@D)

$(STUDENT_MODELS)/minilm-ranknet-teacher-kl/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --loss ranknet-teacher --alpha 0.5 --output $(@D)

$(STUDENT_MODELS)/minilm-ce/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --loss ce --alpha 0 --output $(@D)

$(STUDENT_MODELS)/minilm-ce-kl/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(MINILM_TRAINING) --loss ce --alpha 0.1 --output $(@D)

$(STUDENT_MODELS)/smollm2-untrained/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(SMOLLM2_TRAINING) --max-steps 0 --output $(@D)

$(STUDENT_MODELS)/smollm2-hybrid-kl/dear_ir.json: $(TEACHER_DUMPS)
	$(PY) -m dear_ir.train pointwise --teacher-logits $^ $(SMOLLM2_TRAINING) --loss hybrid --alpha 0.1 --output $(@D)

# --- DL19 runs ---------------------------------------------------------------

$(STUDENT_RUNS)/dl19.teacher-minilm.trec: | $(INSTALLED)
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(RERANK_DL19) --model minilm --output $@

$(STUDENT_RUNS)/dl19.minilm-%.trec: $(STUDENT_MODELS)/minilm-%/dear_ir.json
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(RERANK_DL19) --model $(<D) --output $@

$(STUDENT_RUNS)/dl19.smollm2-%.trec: $(STUDENT_MODELS)/smollm2-%/dear_ir.json
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(RERANK_DL19) --model $(<D) --dtype $(STUDENT_SMOLLM2_DTYPE) --output $@

# --- reports -----------------------------------------------------------------

# Arguments: the teacher's run and all runs.
define student_report
	$(PY) -m dear_ir.evaluate $(BM25_RESULTS)/trec_results_dl19.txt $(2) --qrels $(DL19_QRELS) \
		--metrics ndcg_cut_10 --relevance-level 2
	$(PY) -m dear_ir.train.fidelity $(BM25_RESULTS)/trec_results_dl19.txt $(filter-out $(1),$(2)) \
		--teacher $(1)
endef

student-minilm: $(STUDENT_RUNS)/dl19.teacher-minilm.trec $(MINILM_STUDENTS:%=$(STUDENT_RUNS)/dl19.%.trec)
	$(call student_report,$<,$^)

student-smollm2: $(STUDENT_RUNS)/dl19.teacher-minilm.trec $(SMOLLM2_STUDENTS:%=$(STUDENT_RUNS)/dl19.%.trec)
	$(call student_report,$<,$^)

student-ablation: $(STUDENT_RUNS)/dl19.teacher-minilm.trec \
		$(STUDENT_RUNS)/dl19.minilm-untrained.trec $(ABLATION_STUDENTS:%=$(STUDENT_RUNS)/dl19.%.trec)
	$(call student_report,$<,$^)

student: student-minilm student-smollm2
