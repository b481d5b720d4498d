"""The collection registry: family patterns, per-entry overrides and where a pipeline's data comes from."""

from __future__ import annotations

import pytest

from dear_ir import collections as registry
from dear_ir.collections import (
    MissingDataError,
    RegistryError,
    get_collection,
    load_collections,
    resolve,
)

PAPER_COLLECTIONS = ["dl19", "dl20", "covid", "nfc", "touche", "dbpedia", "scifact", "news", "robust04", "signal", "noveleval"]


def touch(folder, relative, text="x\n"):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_registry_has_paper_collections():
    collections = load_collections()
    for name in PAPER_COLLECTIONS:
        assert name in collections


def test_dl_family_pattern():
    dl20 = get_collection("dl20")
    assert dl20.index == "msmarco-v1-passage"
    assert dl20.topics == "dl20-passage"
    assert dl20.qrels == "dl20-passage"
    assert dl20.relevance_level == 2
    assert dl20.offline["topics"] == "dl20-passage/topics.dl20.txt"
    assert dl20.offline["qrels"] == "dl20-passage/qrels.dl20-passage.txt"
    assert dl20.offline["candidates"] == "rankllm-retrieve-results/BM25/retrieve_results_dl20.json"
    assert dl20.offline["run"] == "rankllm-retrieve-results/BM25/trec_results_dl20.txt"


def test_dl19_override_keeps_family_rest():
    dl19 = get_collection("dl19")
    assert dl19.offline["topics"] == "dl19-passage/topics.dl19-passage.txt"
    assert dl19.offline["qrels"] == "dl19-passage/qrels.dl19-passage.txt"
    assert dl19.offline["run"] == "rankllm-retrieve-results/BM25/trec_results_dl19.txt"
    assert dl19.title == "TREC DL 2019 passage"


def test_beir_family_pattern():
    covid = get_collection("covid")
    assert covid.index == "beir-v1.0.0-trec-covid.flat"
    assert covid.topics == "beir-v1.0.0-trec-covid-test"
    assert covid.offline["topics"] == "beir-trec-covid/topics.beir-v1.0.0-trec-covid.test.tsv.gz"
    assert covid.offline["qrels"] == "beir-trec-covid/qrels.beir-v1.0.0-trec-covid.test.txt"
    assert covid.offline["run"] == "rankllm-retrieve-results/BM25/trec_results_covid.txt"
    assert covid.offline["corpus"] == "beir-trec-covid/corpus.jsonl"
    assert covid.relevance_level == 1


def test_unknown_collection_names_known_ones():
    with pytest.raises(RegistryError, match="dl19"):
        get_collection("dl99")


def test_unknown_entry_key_raises(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("families: {}\ncollections:\n  x: {topics: t, colour: red}\n")
    with pytest.raises(RegistryError, match="colour"):
        load_collections(path)


def test_undefined_pattern_field_raises(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("families: {f: {topics: '{beir}-test'}}\ncollections:\n  x: {family: f}\n")
    with pytest.raises(RegistryError, match="beir"):
        load_collections(path)


def test_auto_is_offline_with_data_folder(tmp_path):
    resources = resolve(get_collection("dl20"), "auto", tmp_path)
    assert resources.mode == "offline"


def test_auto_is_online_without_data_folder(tmp_path):
    resources = resolve(get_collection("dl20"), "auto", tmp_path / "absent")
    assert resources.mode == "online"
    assert resources.topics == "dl20-passage"
    assert resources.qrels == "dl20-passage"
    assert resources.first_stage.kind == "prebuilt"
    assert resources.first_stage.location == "msmarco-v1-passage"
    assert resources.text.location == "msmarco-v1-passage"
    assert not resources.problems


def test_offline_files_dropped_in_are_used(tmp_path):
    dl20 = get_collection("dl20")
    for role in ("topics", "qrels", "run", "candidates"):
        touch(tmp_path, dl20.offline[role])
    resources = resolve(dl20, "offline", tmp_path)
    assert not resources.problems
    assert resources.topics == str(tmp_path / "dl20-passage/topics.dl20.txt")
    assert resources.first_stage.kind == "run"
    assert resources.text.kind == "corpus"
    assert resources.text.location.endswith("retrieve_results_dl20.json")


def test_missing_offline_files_are_named(tmp_path):
    resources = resolve(get_collection("dl20"), "offline", tmp_path)
    with pytest.raises(MissingDataError) as raised:
        resources.require("topics", "first_stage")
    message = str(raised.value)
    assert str(tmp_path / "dl20-passage/topics.dl20.txt") in message
    assert "trec_results_dl20.txt" in message
    assert "retrieve_results_dl20.json" in message  # also named, so one download fetches all
    assert "SOURCE=online" in message


def test_run_without_text_is_partial(tmp_path):
    covid = get_collection("covid")
    for role in ("topics", "qrels", "run"):
        touch(tmp_path, covid.offline[role])
    resources = resolve(covid, "offline", tmp_path)
    assert resources.first_stage.kind == "run"
    assert resources.text is None
    assert "topics" not in resources.problems
    assert resources.reason("first_stage") is None
    assert "beir-trec-covid/corpus.jsonl" in resources.reason("text")


def test_corpus_gives_local_index(tmp_path):
    scifact = get_collection("scifact")
    for role in ("topics", "qrels", "corpus"):
        touch(tmp_path, scifact.offline[role])
    resources = resolve(scifact, "offline", tmp_path, indexes="idx")
    assert resources.first_stage.kind == "index"
    assert resources.first_stage.location == "idx/beir-scifact"
    assert resources.first_stage.corpus == str(tmp_path / "beir-scifact/corpus.jsonl")
    assert resources.text.kind == "index"


def test_noveleval_ranks_its_candidates(tmp_path):
    noveleval = get_collection("noveleval")
    for role in ("topics", "qrels", "candidates"):
        touch(tmp_path, noveleval.offline[role])
    for mode in ("offline", "online"):
        resources = resolve(noveleval, mode, tmp_path)
        assert resources.first_stage.kind == "okapi"
        assert resources.text.location.endswith("noveleval-2306/data.json")
        assert not resources.problems


def test_check_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path))
    assert registry.main(["dl20", "--check"]) == 1
    output = capsys.readouterr().out
    assert "missing" in output
    assert "castorini/rank_llm" in output

    dl20 = get_collection("dl20")
    for role in ("topics", "qrels", "run", "candidates"):
        touch(tmp_path, dl20.offline[role])
    assert registry.main(["dl20", "--check"]) == 0
