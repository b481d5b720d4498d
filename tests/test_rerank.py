"""The rerank command end to end on small files: outputs, metadata, resuming and bad input."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from dear_ir import rerank
from dear_ir.runs import read_run
from tests.conftest import data_file, tiny_chat_config, tiny_llama_config

QUERIES = {"1": "what is wifi", "0019": "how do goldfish grow", "-5": "why is water"}
PASSAGES = {
    "d1": "wifi is a wireless network",
    "d2": "goldfish grow in water",
    "d3": "",  # empty passages are scored like any other
    "d4": " ".join(["fish"] * 3000),  # far past every model's input limit
    "d5": "bluetooth and wifi",
}


@pytest.fixture
def files(tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"{qid}\t{text}\n" for qid, text in QUERIES.items()), encoding="utf-8")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{docid}\t{text}\n" for docid, text in PASSAGES.items()), encoding="utf-8")
    run = tmp_path / "bm25.trec"
    lines = []
    for qid in QUERIES:
        for rank, docid in enumerate(PASSAGES, start=1):
            lines.append(f"{qid} Q0 {docid} {rank} {10 - rank} bm25\n")
    run.write_text("".join(lines), encoding="utf-8")
    return tmp_path, topics, corpus, run


@pytest.fixture
def tiny_llama_folder(tmp_path, word_tokenizer):
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    folder = tmp_path / "tiny-llama"
    LlamaForSequenceClassification(tiny_llama_config(len(word_tokenizer))).save_pretrained(folder)
    word_tokenizer.save_pretrained(folder)
    return folder


def rerank_args(files, model, output, *extra):
    tmp_path, topics, corpus, run = files
    return ["--stage", "pointwise", "--model", str(model), "--input", str(run), "--output", str(output),
            "--topics", str(topics), "--corpus", str(corpus), "--no-progress", *extra]


def test_pointwise_writes_run_and_metadata(files, tiny_llama_folder):
    output = files[0] / "out" / "dear-p.trec"
    assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 0

    run = read_run(output)
    assert set(run) == set(QUERIES)
    assert all(len(hits) == len(PASSAGES) for hits in run.values())
    metadata = json.loads((output.parent / "dear-p.trec.meta.json").read_text())
    assert metadata["settings"]["stage"] == "pointwise"
    assert "torch" in metadata["versions"]
    assert not (output.parent / "dear-p.trec.partial.jsonl").exists()


def test_fixed_and_compact_rank_identically(files, tiny_llama_folder):
    compact = files[0] / "compact.trec"
    fixed = files[0] / "fixed.trec"
    assert rerank.main(rerank_args(files, tiny_llama_folder, compact)) == 0
    assert rerank.main(rerank_args(files, tiny_llama_folder, fixed, "--padding", "fixed")) == 0
    compact_run, fixed_run = read_run(compact), read_run(fixed)
    for qid in QUERIES:
        assert compact_run.docids(qid) == fixed_run.docids(qid)


def test_top_k_keeps_tail_order(files, tiny_llama_folder):
    output = files[0] / "top2.trec"
    assert rerank.main(rerank_args(files, tiny_llama_folder, output, "--top-k", "2")) == 0
    for qid, hits in read_run(output).items():
        assert [hit.docid for hit in hits][2:] == ["d3", "d4", "d5"]
        assert sorted(hit.docid for hit in hits[:2]) == ["d1", "d2"]


def test_resume_skips_finished_queries(files, tiny_llama_folder, caplog):
    output = files[0] / "resumed.trec"
    args = rerank_args(files, tiny_llama_folder, output, "--chunk-queries", "1")
    partial = files[0] / "resumed.trec.partial.jsonl"
    settings = rerank.run_settings(rerank.build_parser().parse_args(args + ["--batch-size", "7"]))
    partial.write_text(json.dumps({"settings": json.loads(json.dumps(settings, default=str))}) + "\n"
                       + json.dumps({"qid": "1", "hits": [["d5", 9.0], ["d1", 8.0]]}) + "\n", encoding="utf-8")

    with caplog.at_level(logging.INFO):
        assert rerank.main(args) == 0
    run = read_run(output)
    assert run.docids("1") == ["d5", "d1"]
    assert len(run["0019"]) == len(PASSAGES)
    assert "1 queries already done" in caplog.text
    assert not partial.exists()


def test_missing_input_file_fails_cleanly(files, tiny_llama_folder, caplog):
    output = files[0] / "never.trec"
    args = rerank_args(files, tiny_llama_folder, output)
    args[args.index("--input") + 1] = str(files[0] / "absent.trec")
    assert rerank.main(args) == 1
    assert "absent.trec" in caplog.text
    assert not output.exists()


def test_malformed_run_line_fails_cleanly(files, tiny_llama_folder, caplog):
    run = files[3]
    run.write_text(run.read_text() + "1 Q0 d9 6\n", encoding="utf-8")
    output = files[0] / "never.trec"
    assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 1
    assert f"{run}:16" in caplog.text
    assert not output.exists()


def test_missing_docid_names_it(files, tiny_llama_folder, caplog):
    run = files[3]
    run.write_text(run.read_text() + "0019 Q0 ghost 6 0.5 bm25\n", encoding="utf-8")
    output = files[0] / "never.trec"
    assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 1
    assert "'ghost'" in caplog.text
    assert "--skip-missing" in caplog.text
    assert not output.exists()


def test_skip_missing_drops_and_counts(files, tiny_llama_folder, caplog):
    run = files[3]
    run.write_text(run.read_text() + "0019 Q0 ghost 6 0.5 bm25\nonly-ghosts Q0 ghost 1 1.0 bm25\n", encoding="utf-8")
    topics = files[1]
    topics.write_text(topics.read_text() + "only-ghosts\tnothing here\n", encoding="utf-8")
    output = files[0] / "skipped.trec"
    with caplog.at_level(logging.WARNING):
        assert rerank.main(rerank_args(files, tiny_llama_folder, output, "--skip-missing")) == 0
    assert "skipped 2 hits" in caplog.text
    assert "1 queries have no candidates" in caplog.text
    run_out = read_run(output)
    assert "only-ghosts" not in run_out
    assert "ghost" not in run_out.docids("0019")


def test_query_without_topic_fails_cleanly(files, tiny_llama_folder, caplog):
    run = files[3]
    run.write_text(run.read_text() + "unknown Q0 d1 1 1.0 bm25\n", encoding="utf-8")
    assert rerank.main(rerank_args(files, tiny_llama_folder, files[0] / "never.trec")) == 1
    assert "have no topic" in caplog.text


def test_non_utf8_and_mojibake_corpus_is_repaired(files, tiny_llama_folder, caplog):
    corpus = files[2]
    corpus.write_bytes(corpus.read_bytes() + b"d6\tcaf\xe9 latte\nd7\tcaf\xc3\x83\xc2\xa9 au lait\n")
    run = files[3]
    run.write_text(run.read_text() + "1 Q0 d6 6 0.4 bm25\n1 Q0 d7 7 0.3 bm25\n", encoding="utf-8")
    output = files[0] / "repaired.trec"
    with caplog.at_level(logging.INFO):
        assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 0
    assert {"d6", "d7"} <= set(read_run(output).docids("1"))
    assert "invalid UTF-8" in caplog.text or "U+FFFD" in caplog.text


def test_stage_without_model_is_rejected(files):
    tmp_path, topics, corpus, run = files
    with pytest.raises(SystemExit):
        rerank.main(["--stage", "dear", "--pointwise-model", "minilm", "--input", str(run),
                     "--output", str(tmp_path / "x.trec"), "--topics", str(topics), "--corpus", str(corpus)])


@pytest.mark.slow
def test_minilm_bi_encoder_reranks(files):
    pytest.importorskip("sentence_transformers")
    output = files[0] / "minilm.trec"
    assert rerank.main(rerank_args(files, "minilm", output)) == 0
    assert read_run(output).docids("1")[0] in {"d1", "d5"}
    metadata = json.loads((files[0] / "minilm.trec.meta.json").read_text())
    assert metadata["settings"]["model"] == "minilm"


@pytest.mark.slow
@pytest.mark.data
def test_smollm2_scores_dl19_candidates(tmp_path):
    """SmolLM2 as an untrained DeAR-P classifier: it must run, not rank well."""
    bm25 = data_file("rankllm-retrieve-results/BM25")
    topics = data_file("dl19-passage/topics.dl19-passage.txt")
    output = tmp_path / "smollm2.trec"
    args = ["--stage", "pointwise", "--model", "smollm2", "--input", str(bm25 / "trec_results_dl19.txt"),
            "--corpus", str(bm25 / "retrieve_results_dl19.json"), "--topics", str(topics),
            "--hits", "2", "--output", str(output), "--no-progress"]
    assert rerank.main(args) == 0
    run = read_run(output)
    assert len(run) == 43
    assert all(len(hits) == 2 for hits in run.values())


@pytest.fixture
def tiny_chat_folder(tmp_path, smollm2_tokenizer_folder):
    """A tiny random `LlamaForCausalLM` saved with the offline SmolLM2 tokenizer and its chat template."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_folder)

    torch.manual_seed(0)
    config = tiny_chat_config(tokenizer)
    folder = tmp_path / "tiny-chat"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_dear_stage_chains_both_models(files, tiny_llama_folder, tiny_chat_folder):
    tmp_path, topics, corpus, run = files
    output = tmp_path / "dear.trec"
    sidecar = tmp_path / "dear.reasoning.jsonl"
    args = ["--stage", "dear", "--pointwise-model", str(tiny_llama_folder), "--listwise-model", str(tiny_chat_folder),
            "--input", str(run), "--output", str(output), "--topics", str(topics), "--corpus", str(corpus),
            "--window", "3", "--step", "2", "--rank-end", "4", "--max-new-tokens", "8", "--max-words", "20",
            "--reasoning-output", str(sidecar), "--no-progress"]
    assert rerank.main(args) == 0

    result = read_run(output)
    assert set(result) == set(QUERIES)
    for hits in result.values():
        assert len(hits) == len(PASSAGES)
        assert all(a.score > b.score for a, b in zip(hits, hits[1:]))
    records = [json.loads(line) for line in sidecar.read_text().splitlines()]
    # Four head passages in windows of 3, step 2: [1, 4) then [0, 3), per query.
    assert len(records) == 2 * len(QUERIES)
    assert {record["qid"] for record in records} == set(QUERIES)


def test_failed_model_load_leaves_no_partial(files, caplog):
    output = files[0] / "never.trec"
    assert rerank.main(rerank_args(files, files[0] / "no-such-model", output)) == 1
    assert "no-such-model" in caplog.text
    assert not output.exists()
    assert not (files[0] / "never.trec.partial.jsonl").exists()


def test_corrupt_partial_names_file(files, tiny_llama_folder, caplog):
    output = files[0] / "corrupt.trec"
    (files[0] / "corrupt.trec.partial.jsonl").write_text("garbage\n", encoding="utf-8")
    assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 1
    assert "corrupt.trec.partial.jsonl" in caplog.text
    assert "delete it" in caplog.text


@pytest.mark.parametrize("option", ["--hits", "--top-k", "--batch-size"])
def test_non_positive_counts_rejected(files, tiny_llama_folder, option):
    with pytest.raises(SystemExit):
        rerank.main(rerank_args(files, tiny_llama_folder, files[0] / "x.trec", option, "0"))


def test_output_folder_or_input_rejected(files, tiny_llama_folder):
    with pytest.raises(SystemExit, match="is a folder"):
        rerank.main(rerank_args(files, tiny_llama_folder, files[0]))
    with pytest.raises(SystemExit, match="is the --input run"):
        rerank.main(rerank_args(files, tiny_llama_folder, files[3]))


def test_output_readable_by_others(files, tiny_llama_folder):
    output = files[0] / "mode.trec"
    old_umask = os.umask(0o022)
    try:
        assert rerank.main(rerank_args(files, tiny_llama_folder, output)) == 0
    finally:
        os.umask(old_umask)
    assert output.stat().st_mode & 0o777 == 0o644
