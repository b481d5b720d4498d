"""Corpora: formats detected from content, string docids, text hygiene and Lucene lookups."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, data_file
from dear_ir.corpus import CorpusFile, Document, LuceneDocuments, iter_corpus, open_source
from dear_ir.textfile import TextFileError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(record) + "\n" for record in records))


# Document -----------------------------------------------------------------------------------


def test_contents_joins_title_and_text():
    assert Document("1", "Title", "text body").contents == "Title text body"


def test_contents_without_title_is_text():
    assert Document("1", "", "text body").contents == "text body"


# Formats ------------------------------------------------------------------------------------


def test_pyserini_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "0007", "contents": "a passage"}])
    assert list(iter_corpus(path)) == [Document("0007", "", "a passage")]


def test_title_text_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "1", "title": "Goldfish", "text": "grow slowly"}])
    [document] = iter_corpus(path)
    assert document == Document("1", "Goldfish", "grow slowly")
    assert document.contents == "Goldfish grow slowly"


def test_beir_jsonl_integer_ids(tmp_path):
    records = [
        {"_id": 4983, "title": "T", "text": "a", "metadata": {}},
        {"_id": "-5", "title": "", "text": "b"},
        {"_id": "0019", "text": "no title key"},
    ]
    path = write_jsonl(tmp_path / "corpus.jsonl", records)
    assert [document.docid for document in iter_corpus(path)] == ["4983", "-5", "0019"]


def test_contents_wins_over_title_text(tmp_path):
    # Pyserini indexes "contents" alone, so a record with both keeps it as the text.
    record = {"id": "1", "title": "T", "text": "a", "contents": "T a, as indexed"}
    path = write_jsonl(tmp_path / "corpus.jsonl", [record])
    assert list(iter_corpus(path)) == [Document("1", "", "T a, as indexed")]


def test_tsv_without_header(tmp_path):
    path = write(tmp_path / "collection.tsv", "0\tfirst passage\n0019\tsecond\twith a tab\n")
    assert list(iter_corpus(path)) == [
        Document("0", "", "first passage"),
        Document("0019", "", "second\twith a tab"),
    ]


def test_tsv_header_skipped(tmp_path):
    path = write(tmp_path / "collection.tsv", "docid\ttext\n1\tpassage\n")
    assert list(iter_corpus(path)) == [Document("1", "", "passage")]


def test_tsv_first_line_data_not_header(tmp_path):
    # "id" as a docid followed by ordinary text is data.
    path = write(tmp_path / "collection.tsv", "id\tidentity documents\n")
    assert list(iter_corpus(path)) == [Document("id", "", "identity documents")]


def test_dpr_tsv_header_sets_columns(tmp_path):
    path = write(tmp_path / "psgs_w100.tsv", 'id\ttext\ttitle\n1\tAaron is a prophet\tAaron\n2\t"quoted"\tMoses\n')
    assert list(iter_corpus(path)) == [
        Document("1", "Aaron", "Aaron is a prophet"),
        Document("2", "Moses", '"quoted"'),
    ]


def test_dpr_tsv_short_row_names_line(tmp_path):
    path = write(tmp_path / "psgs_w100.tsv", "id\ttext\ttitle\n1\tAaron is a prophet\tAaron\n2\tno title\n")
    with pytest.raises(TextFileError, match=r"psgs_w100\.tsv:3: expected 3 tab-separated columns"):
        list(iter_corpus(path))


def test_candidates_json_deduplicated(tmp_path):
    entries = [
        {"query": "q1", "hits": [
            {"qid": 1, "docid": "7", "content": "seven", "rank": 1, "score": 2.0},
            {"qid": 1, "docid": "0008", "content": "eight", "rank": 2, "score": 1.0},
        ]},
        {"query": "q2", "hits": [{"qid": 2, "docid": "7", "content": "seven", "rank": 1, "score": 3.0}]},
    ]
    path = write(tmp_path / "retrieve_results.json", json.dumps(entries))
    assert list(iter_corpus(path)) == [Document("7", "", "seven"), Document("0008", "", "eight")]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "1", "contents": "zipped"}\n'))
    assert list(iter_corpus(path)) == [Document("1", "", "zipped")]


def test_empty_corpus_file(tmp_path, caplog):
    path = write(tmp_path / "corpus.jsonl", "")
    with caplog.at_level(logging.WARNING):
        assert list(iter_corpus(path)) == []
    assert "empty" in caplog.text


# Malformed input ----------------------------------------------------------------------------


def test_invalid_json_line_number(tmp_path):
    path = write(tmp_path / "corpus.jsonl", '{"id": "1", "contents": "a"}\n{"id": "2", "contents": \n')
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:2: invalid JSON"):
        list(iter_corpus(path))


def test_jsonl_without_docid_names_line(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "1", "text": "a"}, {"title": "t", "text": "b"}])
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:2: no docid"):
        list(iter_corpus(path))


def test_jsonl_without_text_names_docid(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "0019", "title": "only a title"}])
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:1: docid '0019' has no text"):
        list(iter_corpus(path))


def test_jsonl_non_string_text_names_docid(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "7", "contents": ["a", "list"]}])
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:1: docid '7': 'contents' must be a string"):
        list(iter_corpus(path))


def test_jsonl_empty_docid_names_line(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": " ", "contents": "a"}])
    with pytest.raises(TextFileError, match=r"corpus\.jsonl:1: empty docid"):
        list(iter_corpus(path))


def test_tsv_without_tab_names_line(tmp_path):
    path = write(tmp_path / "collection.tsv", "1\tfine\n2 no tab here\n")
    with pytest.raises(TextFileError, match=r"collection\.tsv:2: expected 'docid<TAB>text'"):
        list(iter_corpus(path))


def test_candidates_hit_without_content(tmp_path):
    path = write(tmp_path / "candidates.json", json.dumps([{"query": "q", "hits": [{"qid": 1, "docid": "9"}]}]))
    with pytest.raises(TextFileError, match="query 0, hit 0: docid '9' has no 'content'"):
        list(iter_corpus(path))


def test_missing_corpus_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.missing.jsonl"):
        list(iter_corpus(tmp_path / "corpus.missing.jsonl"))


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a file"):
        list(iter_corpus(tmp_path))


# Text hygiene -------------------------------------------------------------------------------


def test_invalid_utf8_replaced_and_counted(tmp_path, caplog):
    path = tmp_path / "collection.tsv"
    path.write_bytes(b"1\tcaf\xe9 cr\xe8me\n2\tvalid \xef\xbf\xbd kept\n3\t\xff\xfe\n")
    with caplog.at_level(logging.WARNING):
        documents = list(iter_corpus(path))
    assert documents[0].text == "caf\ufffd cr\ufffdme"
    assert documents[1].text == "valid \ufffd kept"
    assert documents[2].text == "\ufffd\ufffd"
    # The U+FFFD already in line 2 is not counted as an invalid sequence.
    assert caplog.text.count("replaced 4 invalid UTF-8 byte sequences with U+FFFD on 2 lines") == 1


def test_truncated_gzip_raises(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "1", "contents": "a"}\n' * 1000)[:-30])
    with pytest.raises(TextFileError, match=r"corpus\.jsonl\.gz: failed to read the file"):
        list(iter_corpus(path))


def test_mojibake_repaired_and_counted(tmp_path, caplog):
    records = [
        {"id": "1", "contents": "caf\u00c3\u00a9 au lait"},
        {"id": "2", "title": "Anton\u00c3\u00adn Dvo\u00c5\u0099\u00c3\u00a1k", "text": "the world\u00e2\u0080\u0099s composer"},
        {"id": "3", "contents": "na\u00efve caf\u00e9, \u201cquoted\u201d \u2014 \u20ac20"},
    ]
    path = write_jsonl(tmp_path / "corpus.jsonl", records)
    with caplog.at_level(logging.INFO):
        documents = list(iter_corpus(path))
    assert documents[0].text == "café au lait"
    assert documents[1].title == "Antonín Dvořák"
    assert documents[1].text == "the world’s composer"
    # Correct text, curly quotes included, is left alone.
    assert documents[2].text == records[2]["contents"]
    assert "repaired mojibake in 3 documents" in caplog.text


def test_mojibake_kept_when_repair_off(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "1", "contents": "caf\u00c3\u00a9"}])
    assert [document.text for document in iter_corpus(path, repair=False)] == ["caf\u00c3\u00a9"]
    assert CorpusFile(path, repair=False).text("1") == "caf\u00c3\u00a9"


def test_empty_passages_allowed_and_counted(tmp_path, caplog):
    path = write(tmp_path / "collection.tsv", "1\t\n2\t   \n3\ttext\n")
    with caplog.at_level(logging.WARNING):
        documents = list(iter_corpus(path))
    assert [document.text for document in documents] == ["", "   ", "text"]
    assert "2 documents are empty" in caplog.text


def test_null_text_becomes_empty(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "1", "title": None, "text": None}])
    assert list(iter_corpus(path)) == [Document("1", "", "")]


def test_very_long_passage_kept_whole(tmp_path):
    long_text = "token " * 200_000
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "long", "contents": long_text}])
    [document] = iter_corpus(path)
    assert len(document.text) == len(long_text)


@pytest.mark.data
def test_real_mojibake_in_splade_toy_collection():
    source = CorpusFile(data_file("msmarco-toy-triples/splade-toy-collection.tsv"))
    assert len(source) == 89
    assert "Antonín" in source.text("99")
    assert "Ã" not in source.text("99")


@pytest.mark.data
def test_real_corpora_sizes():
    assert sum(1 for _ in iter_corpus(data_file("beir-scifact/corpus.jsonl"))) == 5183
    cranfield = CorpusFile(data_file("cranfield/corpus.jsonl"))
    assert len(cranfield) == 1400
    noveleval = CorpusFile(data_file("noveleval-2306/data.json"))
    assert noveleval.text("0-0").startswith("Spider-Man: Across the Spider-Verse")


# Sources ------------------------------------------------------------------------------------


def test_corpus_file_lookup(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": "0019", "title": "T", "text": "leading zero"},
        {"_id": "19", "title": "", "text": "no leading zero"},
    ])
    source = CorpusFile(path)
    assert source.name == str(path)
    assert source.text("0019") == "T leading zero"
    assert source.text("19") == "no leading zero"
    assert source.text("019") is None
    assert source.document("0019") == Document("0019", "T", "leading zero")
    assert "19" in source
    assert len(source) == 2


def test_corpus_file_repeated_docid_keeps_first(tmp_path, caplog):
    path = write(tmp_path / "collection.tsv", "1\tfirst\n1\tsecond\n")
    with caplog.at_level(logging.WARNING):
        source = CorpusFile(path)
    assert source.text("1") == "first"
    assert "1 repeated docids" in caplog.text


def test_open_source_requires_one(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        open_source()
    with pytest.raises(ValueError, match="exactly one"):
        open_source(index="x", corpus="y")


def test_open_source_corpus(tmp_path):
    path = write(tmp_path / "collection.tsv", "1\ttext\n")
    source = open_source(corpus=path)
    assert source.text("1") == "text"


class _StoredDocument:
    """A stand-in for a Lucene document with Pyserini's raw() and contents()."""

    def __init__(self, raw, contents):
        self._raw, self._contents = raw, contents

    def raw(self):
        return self._raw

    def contents(self):
        return self._contents


@pytest.mark.parametrize("raw, contents, expected", [
    ('{"id": "1", "contents": "indexed text"}', "indexed text", Document("1", "", "indexed text")),
    ('{"_id": "1", "title": "T", "text": "body"}', "T body", Document("1", "T", "body")),
    ("plain raw text", "plain", Document("1", "", "plain raw text")),
    (None, "contents only", Document("1", "", "contents only")),
])
def test_lucene_stored_fields(raw, contents, expected):
    assert LuceneDocuments._parse_stored("1", _StoredDocument(raw, contents)) == expected


# The index is built with Anserini's IndexCollection in a subprocess, so that
# an indexing failure that exits the JVM cannot take pytest down with it.
_INDEX_SCRIPT = """
import sys
from dear_ir.java import start_jvm
start_jvm()
from jnius import autoclass
autoclass("io.anserini.index.IndexCollection").main([
    "-collection", "JsonCollection", "-input", sys.argv[1], "-index", sys.argv[2],
    "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1", "-storeRaw", "-storeContents",
])
"""


@pytest.mark.slow
def test_lucene_documents_from_local_index(tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    write_jsonl(documents / "part.jsonl", [
        {"id": "0007", "contents": "caf\u00c3\u00a9 au lait"},
        {"id": "-5", "contents": "negative docid"},
    ])
    index = tmp_path / "index"
    completed = subprocess.run(
        [sys.executable, "-c", _INDEX_SCRIPT, str(documents), str(index)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]

    source = open_source(index=index)
    assert source.name == str(index)
    assert source.text("0007") == "café au lait"
    assert source.text("-5") == "negative docid"
    assert source.text("7") is None
    assert source.repaired == 1
    assert LuceneDocuments(index, repair=False).text("0007") == "caf\u00c3\u00a9 au lait"


def test_lucene_missing_index_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Lucene index not found"):
        LuceneDocuments(tmp_path / "no-index")
