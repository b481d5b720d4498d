"""Pipeline steps of the make targets: first stages from offline files, and missing data."""

from __future__ import annotations

import json

import pytest

from dear_ir import pipeline
from dear_ir.collections import FirstStage, get_collection, resolve
from dear_ir.runs import read_run


@pytest.fixture
def dl20_data(tmp_path, monkeypatch):
    """DL20 offline files with a three-hit run for one query."""
    data = tmp_path / "data"
    dl20 = get_collection("dl20")
    files = {
        "topics": "7\tquery seven\n",
        "qrels": "7 0 b 2\n",
        "run": "7 Q0 a 1 3.0 bm25\n7 Q0 b 2 2.0 bm25\n7 Q0 c 3 1.0 bm25\n",
        "candidates": json.dumps([{"query": "query seven", "hits": [
            {"qid": 7, "docid": d, "content": f"text {d}", "rank": r, "score": 1.0} for r, d in enumerate("abc", 1)
        ]}]),
    }
    for role, text in files.items():
        path = data / dl20.offline[role]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("DEAR_IR_DATA", str(data))
    return tmp_path


def test_first_stage_copies_run(dl20_data):
    output = dl20_data / "runs" / "dl20.bm25.trec"
    assert pipeline.main(["first-stage", "dl20", "--output", str(output), "--hits", "2"]) == 0
    assert read_run(output).docids("7") == ["a", "b"]
    metadata = json.loads((dl20_data / "runs" / "dl20.bm25.trec.meta.json").read_text())
    assert metadata["settings"]["copied_from"].endswith("trec_results_dl20.txt")


def test_missing_files_stop_with_status_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DEAR_IR_DATA", str(tmp_path))
    output = tmp_path / "dl20.bm25.trec"
    assert pipeline.main(["first-stage", "dl20", "--output", str(output)]) == 2
    assert not output.exists()
    assert "topics.dl20.txt" in caplog.text


def test_missing_text_skips_without_output(dl20_data, caplog):
    (dl20_data / "data" / get_collection("dl20").offline["candidates"]).unlink()
    run = dl20_data / "runs" / "dl20.bm25.trec"
    assert pipeline.main(["first-stage", "dl20", "--output", str(run)]) == 0
    output = dl20_data / "runs" / "dl20.bm25.minilm.trec"
    arguments = ["rerank", "dl20", "--stage", "pointwise", "--model", "minilm", "--input", str(run), "--output", str(output)]
    assert pipeline.main(arguments + ["--on-missing", "skip"]) == 0
    assert not output.exists()
    assert "retrieve_results_dl20.json" in caplog.text
    assert pipeline.main(arguments) == 2


def test_rerank_command(dl20_data, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_module", lambda module, arguments, environment=None: calls.append((module, arguments, environment)))
    run = dl20_data / "runs" / "dl20.bm25.trec"
    pipeline.main(["first-stage", "dl20", "--output", str(run)])
    output = dl20_data / "runs" / "dl20.bm25.dear-p-8b.trec"
    assert pipeline.main([
        "rerank", "dl20", "--stage", "listwise", "--model", "dear-l-8b", "--input", str(run), "--output", str(output),
        "--device", "cuda", "--allow-hub-download", "--", "--rank-end", "30",
    ]) == 0
    module, arguments, environment = calls[-1]
    assert module == "dear_ir.rerank"
    assert arguments[arguments.index("--corpus") + 1].endswith("retrieve_results_dl20.json")
    assert arguments[arguments.index("--dtype") + 1] == "bfloat16"
    assert arguments[-2:] == ["--rank-end", "30"]
    assert f"{output}.reasoning.jsonl" in arguments
    assert environment == {"HF_HUB_OFFLINE": "0"}


def test_local_model_keeps_hub_offline():
    assert not pipeline.is_hub_model("minilm")
    assert pipeline.is_hub_model("dear-p-8b")
    assert pipeline.is_hub_model("abdoelsayed/dear-8b-reranker-ce-v1")
    assert not pipeline.is_hub_model("./models/student")


def test_device_and_dtype_defaults():
    assert pipeline.resolve_dtype("auto", "cpu") is None
    assert pipeline.resolve_dtype("auto", "cuda:0") == "bfloat16"
    assert pipeline.resolve_dtype("float32", "cuda") == "float32"
    assert pipeline.resolve_dtype("", "cuda") is None
    assert pipeline.resolve_device("cpu") == "cpu"


def test_unjudged_topics_left_out(dl20_data, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_module", lambda module, arguments, environment=None: calls.append(arguments))
    topics = dl20_data / "data" / get_collection("dl20").offline["topics"]
    topics.write_text("7\tquery seven\n8\tunjudged query\n")
    (dl20_data / "data" / get_collection("dl20").offline["run"]).unlink()
    # Offline topics and qrels with an online first stage: BM25 gets a topics file.
    resources = resolve(get_collection("dl20"), "offline")
    resources.problems.pop("first_stage")
    resources.first_stage = FirstStage("prebuilt", "msmarco-v1-passage")
    output = dl20_data / "runs" / "dl20.bm25.trec"
    pipeline.first_stage(resources, output)
    topics_file = calls[-1][calls[-1].index("--topics") + 1]
    assert topics_file == f"{output}.topics.tsv"
    assert (dl20_data / "runs" / "dl20.bm25.trec.topics.tsv").read_text() == "7\tquery seven\n"
