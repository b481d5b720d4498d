"""Tests for dear_ir.index and dear_ir.bm25: building Lucene indexes and BM25 runs.

Tests marked slow start a real JVM in this process (dear_ir.java.start_jvm runs
once per process); the others stop before Java is needed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from dear_ir import index as index_module
from dear_ir.bm25 import main as bm25_main
from dear_ir.bm25 import retrieve
from dear_ir.index import IndexingError, build_index, open_searcher, write_json_collection
from dear_ir.runs import read_run
from dear_ir.textfile import TextFileError

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("DEAR_IR_DATA", REPO_ROOT.parent / "shared" / "data"))


def read_collection(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return records


def leftovers(folder: Path) -> list[str]:
    """Return the names of temporary build folders left in `folder`."""
    return [path.name for path in folder.iterdir() if ".building-" in path.name]


# Converting a corpus to a JsonCollection (no Java) ----------------------------------------------


def test_collection_from_beir_jsonl(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": 4983, "title": "Microstructural development", "text": "Alterations of the brain.", "metadata": {}}\n'
        '{"_id": "5836", "title": "", "text": "Induction of myelodysplasia."}\n'
    )
    documents, duplicates, empty = write_json_collection(corpus, tmp_path / "collection")

    assert (documents, duplicates, empty) == (2, 0, 0)
    assert read_collection(tmp_path / "collection") == [
        {"id": "4983", "contents": "Microstructural development Alterations of the brain."},
        {"id": "5836", "contents": "Induction of myelodysplasia."},
    ]


def test_collection_from_pyserini_jsonl(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "d1", "contents": "Already joined."}\n{"id": 7, "title": "T", "text": "x"}\n')
    write_json_collection(corpus, tmp_path / "collection")

    assert read_collection(tmp_path / "collection") == [
        {"id": "d1", "contents": "Already joined."},
        {"id": "7", "contents": "T x"},
    ]


def test_collection_from_tsv(tmp_path):
    corpus = tmp_path / "collection.tsv"
    corpus.write_text("0\tThe presence of communication.\n00\tA tab\tinside the text.\n")
    write_json_collection(corpus, tmp_path / "collection")

    # "0" and "00" stay two different docids, and only the first tab separates.
    assert read_collection(tmp_path / "collection") == [
        {"id": "0", "contents": "The presence of communication."},
        {"id": "00", "contents": "A tab\tinside the text."},
    ]


def test_collection_repeated_docid_keeps_first(tmp_path, caplog):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\tfirst\nb\tother\na\tsecond\n")
    with caplog.at_level(logging.WARNING):
        documents, duplicates, _ = write_json_collection(corpus, tmp_path / "collection")

    assert (documents, duplicates) == (2, 1)
    assert read_collection(tmp_path / "collection")[0] == {"id": "a", "contents": "first"}
    assert "docid 'a' repeats" in caplog.text


def test_collection_invalid_utf8_repaired(tmp_path, caplog):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_bytes(b"a\tcaf\xe9 au lait\nb\tplain\n")
    with caplog.at_level(logging.WARNING):
        documents, _, _ = write_json_collection(corpus, tmp_path / "collection")

    assert documents == 2
    assert read_collection(tmp_path / "collection")[0]["contents"] == "caf\ufffd au lait"
    assert "replaced 1 invalid UTF-8 byte sequences" in caplog.text


def test_collection_keeps_mojibake_by_default(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\tcaf\u00c3\u00a9 au lait\n", encoding="utf-8")
    write_json_collection(corpus, tmp_path / "kept")
    assert read_collection(tmp_path / "kept")[0]["contents"] == "caf\u00c3\u00a9 au lait"


def test_collection_repairs_mojibake_on_request(tmp_path):
    pytest.importorskip("ftfy")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\tcaf\u00c3\u00a9 au lait\n", encoding="utf-8")
    write_json_collection(corpus, tmp_path / "repaired", repair_mojibake=True)
    assert read_collection(tmp_path / "repaired")[0]["contents"] == "caf\u00e9 au lait"


def test_collection_split_into_files(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "DOCUMENTS_PER_FILE", 2)
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"d{i}\ttext {i}\n" for i in range(5)))
    write_json_collection(corpus, tmp_path / "collection")

    files = sorted(path.name for path in (tmp_path / "collection").iterdir())
    assert files == ["docs00000.jsonl", "docs00001.jsonl", "docs00002.jsonl"]
    assert [record["id"] for record in read_collection(tmp_path / "collection")] == [f"d{i}" for i in range(5)]


def test_collection_counts_empty_documents(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "e", "title": "", "text": ""}\n{"_id": "f", "title": "", "text": "word"}\n')
    assert write_json_collection(corpus, tmp_path / "collection") == (2, 0, 1)


# Index build errors and atomicity (no Java) -----------------------------------------------------


def test_index_malformed_line_names_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "title": "", "text": "fine"}\n{"_id": "2", "text": \n')
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:2: invalid JSON"):
        build_index(corpus, tmp_path / "index")
    assert not (tmp_path / "index").exists()
    assert leftovers(tmp_path) == []


def test_index_record_without_text(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "title": "only a title"}\n')
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:1: docid '1' has no text"):
        build_index(corpus, tmp_path / "index")


def test_index_missing_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        build_index(tmp_path / "missing.jsonl", tmp_path / "index")
    assert leftovers(tmp_path) == []


def test_index_empty_corpus(tmp_path):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text("")
    with pytest.raises(IndexingError, match="no documents to index"):
        build_index(corpus, tmp_path / "index")


def test_index_existing_target_rejected(tmp_path):
    target = tmp_path / "index"
    target.mkdir()
    (target / "segments_1").write_text("old")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\ttext\n")

    with pytest.raises(FileExistsError, match="pass --overwrite"):
        build_index(corpus, target)
    assert (target / "segments_1").read_text() == "old"


def test_index_crash_leaves_old_index(tmp_path, monkeypatch):
    target = tmp_path / "index"
    target.mkdir()
    (target / "segments_1").write_text("old")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\ttext\n")

    def crash(collection, output, threads):
        output.mkdir()
        (output / "_0.fdt").write_text("half an index")
        raise IndexingError("simulated crash")

    monkeypatch.setattr(index_module, "_run_index_collection", crash)
    with pytest.raises(IndexingError, match="simulated crash"):
        build_index(corpus, target, overwrite=True)
    assert sorted(path.name for path in target.iterdir()) == ["segments_1"]
    assert leftovers(tmp_path) == []


def test_index_counts_mismatch_raises(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\ttext\nb\tmore text\n")

    def index_one(collection, output, threads):
        output.mkdir()
        return {"indexed": 1, "empty": 0, "unindexable": 0, "skipped": 1, "errors": 0}

    monkeypatch.setattr(index_module, "_run_index_collection", index_one)
    with pytest.raises(IndexingError, match="indexed 1 of 2 documents"):
        build_index(corpus, tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_open_searcher_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="build one with python -m dear_ir.index"):
        open_searcher(tmp_path / "no-index")


# A real index (Java) ----------------------------------------------------------------------------

TOY_CORPUS = [
    {"_id": "z", "title": "Fruit", "text": "apple banana"},
    {"_id": "a", "title": "Fruit", "text": "apple banana"},
    {"_id": "m", "title": "Dessert", "text": "apple cherry pie with cream"},
    {"_id": "7", "title": "Travel", "text": "A train to the coast."},
    {"_id": "e", "title": "", "text": ""},
]


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(record) + "\n" for record in TOY_CORPUS))
    stats = build_index(corpus, folder / "index", threads=1)
    assert (stats.documents, stats.indexed, stats.empty) == (5, 4, 1)
    return folder / "index"


@pytest.mark.slow
def test_index_stores_documents(toy_index):
    searcher = open_searcher(toy_index)
    assert searcher.num_docs == 4
    assert json.loads(searcher.doc("m").raw()) == {"id": "m", "contents": "Dessert apple cherry pie with cream"}
    assert searcher.doc("m").contents() == "Dessert apple cherry pie with cream"
    assert searcher.doc("e") is None
    assert not leftovers(toy_index.parent)


@pytest.mark.slow
def test_retrieve_ranks_and_breaks_ties(toy_index):
    run = retrieve(toy_index, {"q1": "apple banana", "q2": "unknownword"}, hits=2, threads=1)

    # "a" and "z" have the same text; Anserini breaks the score tie by docid.
    assert run.docids("q1") == ["a", "z"]
    scores = [hit.score for hit in run["q1"]]
    assert scores[0] >= scores[1] > 0
    assert run["q2"] == []


@pytest.mark.slow
def test_retrieve_bm25_parameters_change_scores(toy_index):
    topics = {"q1": "apple cream"}
    default = retrieve(toy_index, topics, hits=3, threads=1)
    no_length_normalisation = retrieve(toy_index, topics, hits=3, k1=1.2, b=0.0, threads=1)
    assert default["q1"][0].docid == "m"
    assert default["q1"][0].score != no_length_normalisation["q1"][0].score


@pytest.mark.slow
def test_retrieve_remove_query(toy_index):
    run = retrieve(toy_index, {"a": "apple banana"}, hits=2, threads=1, remove_query=True)
    assert run.docids("a") == ["z", "m"]


@pytest.mark.slow
def test_index_overwrite_replaces(toy_index, tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("n1\tnew document\n")
    target = tmp_path / "index"
    build_index(corpus, target, threads=1)
    corpus.write_text("n1\tnew document\nn2\tanother one\n")
    stats = build_index(corpus, target, threads=1, overwrite=True)

    assert stats.indexed == 2
    assert open_searcher(target).num_docs == 2
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_bm25_cli_writes_run_and_metadata(toy_index, tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tapple banana\n007\ttrain coast\n")
    output = tmp_path / "runs" / "bm25.trec"
    bm25_main([
        "--index", str(toy_index), "--topics", str(topics), "--output", str(output),
        "--hits", "3", "--threads", "1", "--k1", "1.2", "--b", "0.75",
    ])

    run = read_run(output)
    assert run.docids("q1")[:2] == ["a", "z"]
    assert run.docids("007") == ["7"]
    assert output.read_text().splitlines()[0].split()[-1] == "bm25"

    metadata = json.loads((tmp_path / "runs" / "bm25.trec.meta.json").read_text())
    assert metadata["settings"]["k1"] == 1.2
    assert metadata["settings"]["b"] == 0.75
    assert metadata["settings"]["hits"] == 3
    assert metadata["versions"]["pyserini"]
    assert "Java" in metadata["java"]


# SciFact reproduction ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
def test_scifact_bm25_reproduces_pyserini(tmp_path):
    import pytrec_eval

    folder = data_dir() / "beir-scifact"
    corpus = folder / "corpus.jsonl"
    topics_file = folder / "topics.beir-v1.0.0-scifact.test.tsv.gz"
    qrels_file = folder / "qrels.beir-v1.0.0-scifact.test.txt"
    for path in (corpus, topics_file, qrels_file):
        if not path.is_file():
            pytest.skip(f"{path} not found; set DEAR_IR_DATA to the shared data folder")

    from dear_ir.topics import load_qrels, load_topics

    build_index(corpus, tmp_path / "scifact", threads=2)
    run = retrieve(tmp_path / "scifact", load_topics(topics_file), hits=100, threads=2)
    qrels = load_qrels(qrels_file)

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run.to_pytrec())
    # Judged queries missing from the run count as 0, as trec_eval -c does.
    ndcg = sum(scores["ndcg_cut_10"] for scores in per_query.values()) / len(qrels)
    recall = sum(scores["recall_100"] for scores in per_query.values()) / len(qrels)

    assert len(qrels) == 300
    assert ndcg == pytest.approx(0.6789, abs=0.0005)
    assert recall == pytest.approx(0.9253, abs=0.0005)
