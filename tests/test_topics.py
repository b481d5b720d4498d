"""Topics, qrels and QA answers: formats detected from content, string ids, errors with line numbers."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO_ROOT, data_file
from dear_ir.textfile import TextFileError
from dear_ir.topics import load_answers, load_qrels, load_topics


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Topics -------------------------------------------------------------------------------------


def test_tsv_ids_stay_distinct_strings(tmp_path):
    path = write(tmp_path / "topics.tsv", "0019\tleading zeros\n19\tplain\n-5\tnegative\n")
    topics = load_topics(path)
    assert topics == {"0019": "leading zeros", "19": "plain", "-5": "negative"}


def test_tsv_header_skipped(tmp_path):
    path = write(tmp_path / "topics.tsv", "qid\tquery\n1\tdo goldfish grow\n")
    assert load_topics(path) == {"1": "do goldfish grow"}


def test_tsv_tab_inside_query_kept(tmp_path):
    path = write(tmp_path / "topics.tsv", "1\tpart one\tpart two\n")
    assert load_topics(path) == {"1": "part one\tpart two"}


def test_gzipped_tsv(tmp_path):
    path = tmp_path / "topics.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("007\tcafé au lait\n8\tsecond\n")
    assert load_topics(path) == {"007": "café au lait", "8": "second"}


def test_gzip_detected_without_suffix(tmp_path):
    path = tmp_path / "topics.txt"
    path.write_bytes(gzip.compress(b"1\tquery\n"))
    assert load_topics(path) == {"1": "query"}


def test_trec_topic_format(tmp_path):
    path = write(tmp_path / "topics.robust", textwrap.dedent("""\
        <top>
        <num> Number: 301
        <title> International Organized
        Crime

        <desc> Description:
        Identify organizations that participate in international criminal activity.

        <narr> Narrative:
        A relevant document must as a minimum identify the organization.
        </top>

        <top>
        <num> Number: 051
        <title> Topic: Airbus Subsidies
        <desc> Description:
        Document will discuss government assistance to Airbus.
        </top>
        """))
    assert load_topics(path) == {"301": "International Organized Crime", "051": "Airbus Subsidies"}


def test_trec_block_without_title_names_line(tmp_path):
    path = write(tmp_path / "topics.trec", "<top>\n<num> Number: 1\n<title> a\n</top>\n\n<top>\n<num> Number: 2\n</top>\n")
    with pytest.raises(TextFileError, match=r"topics\.trec:6:"):
        load_topics(path)


def test_xml_topic_format(tmp_path):
    path = write(tmp_path / "topics.covid.xml", textwrap.dedent("""\
        <topics>
          <topic number="1">
            <query>coronavirus origin</query>
            <question>what is the origin of COVID-19</question>
          </topic>
          <topic number="02">
            <query>coronavirus response to weather changes</query>
          </topic>
        </topics>
        """))
    assert load_topics(path) == {"1": "coronavirus origin", "02": "coronavirus response to weather changes"}


def test_jsonl_keys_and_integer_ids(tmp_path):
    lines = [
        {"qid": 19, "query": "integer qid"},
        {"_id": "0019", "text": "BEIR keys"},
        {"id": "-5", "title": "title key"},
        {"query_id": "q4", "question": "question key"},
    ]
    path = write(tmp_path / "queries.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    topics = load_topics(path)
    assert topics == {"19": "integer qid", "0019": "BEIR keys", "-5": "title key", "q4": "question key"}


def test_jsonl_malformed_line_number(tmp_path):
    path = write(tmp_path / "queries.jsonl", '{"qid": "1", "query": "a"}\n\n{"qid": "2", "query": \n')
    with pytest.raises(TextFileError, match=r"queries\.jsonl:3: invalid JSON"):
        load_topics(path)


def test_jsonl_missing_query_key(tmp_path):
    path = write(tmp_path / "queries.jsonl", '{"qid": "1", "body": "a"}\n')
    with pytest.raises(TextFileError, match=r"queries\.jsonl:1: expected a qid key"):
        load_topics(path)


def test_rankgpt_candidates_json(tmp_path):
    entries = [
        {"query": "how long is life cycle of flea", "hits": [{"qid": 264014, "docid": "1", "content": "x"}]},
        {"query": "no hits, no qid", "hits": []},
        {"query": "leading zero", "hits": [{"qid": "0042", "docid": "2", "content": "y"}]},
    ]
    path = write(tmp_path / "candidates", json.dumps(entries, indent=2))
    assert load_topics(path) == {"264014": "how long is life cycle of flea", "0042": "leading zero"}


def test_tsv_line_without_tab_names_line(tmp_path):
    path = write(tmp_path / "topics.tsv", "1\tfirst\n2\tsecond\n3 third\n")
    with pytest.raises(TextFileError, match=r"topics\.tsv:3: expected 'qid<TAB>query'"):
        load_topics(path)


def test_repeated_qid_keeps_first(tmp_path, caplog):
    path = write(tmp_path / "topics.tsv", "1\tfirst\n1\tsecond\n")
    with caplog.at_level(logging.WARNING):
        assert load_topics(path) == {"1": "first"}
    assert "1 repeated qids" in caplog.text


def test_invalid_utf8_in_topics_replaced(tmp_path, caplog):
    path = tmp_path / "topics.tsv"
    path.write_bytes(b"1\tcaf\xe9 latin-1\n2\tclean\n")
    with caplog.at_level(logging.WARNING):
        topics = load_topics(path)
    assert topics["1"] == "caf\ufffd latin-1"
    assert "replaced 1 invalid UTF-8 byte sequences" in caplog.text


def test_byte_order_mark_dropped(tmp_path):
    path = tmp_path / "topics.tsv"
    path.write_bytes("\ufeff1\tquery\n".encode("utf-8"))
    assert load_topics(path) == {"1": "query"}


def test_missing_topics_file_named(tmp_path):
    missing = tmp_path / "nope" / "topics.tsv"
    with pytest.raises(FileNotFoundError, match="topics.tsv"):
        load_topics(missing)


def test_missing_file_with_known_suffix(tmp_path, monkeypatch):
    # A bare name with a file suffix is a file, never a Pyserini name.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="file not found: topics.dl19.tsv"):
        load_topics("topics.dl19.tsv")


def test_empty_topics_file(tmp_path):
    path = write(tmp_path / "topics.tsv", "\n\n")
    with pytest.raises(TextFileError, match="empty"):
        load_topics(path)


@pytest.mark.data
def test_real_topic_files():
    assert len(load_topics(data_file("dl19-passage/topics.dl19-passage.txt"))) == 43
    scifact = load_topics(data_file("beir-scifact/topics.beir-v1.0.0-scifact.test.tsv.gz"))
    assert len(scifact) == 300
    assert scifact["1"] == "0-dimensional biomaterials show inductive properties."
    candidates = load_topics(data_file("rankllm-retrieve-results/BM25/retrieve_results_dl19.json"))
    assert candidates.keys() == load_topics(data_file("dl19-passage/topics.dl19-passage.txt")).keys()


# QA answers ---------------------------------------------------------------------------------


def test_dpr_qa_file_numbered_from_zero(tmp_path):
    path = write(
        tmp_path / "nq-test.qa.csv",
        'who got the first nobel prize in physics\t["Wilhelm Conrad R\u00f6ntgen"]\n'
        "when is the next deadpool movie being released\t['May 18 , 2018']\n",
    )
    assert load_topics(path) == {
        "0": "who got the first nobel prize in physics",
        "1": "when is the next deadpool movie being released",
    }
    assert load_answers(path) == {"0": ["Wilhelm Conrad R\u00f6ntgen"], "1": ["May 18 , 2018"]}


def test_answers_from_jsonl(tmp_path):
    path = write(tmp_path / "qa.jsonl", '{"qid": "7", "question": "capital of France", "answers": ["Paris"]}\n')
    assert load_answers(path) == {"7": ["Paris"]}


def test_answers_missing_raises(tmp_path):
    path = write(tmp_path / "topics.tsv", "1\tno answers here\n")
    with pytest.raises(ValueError, match="carry no answers"):
        load_answers(path)


def test_answers_not_strings_names_line(tmp_path):
    path = write(tmp_path / "qa.jsonl", '{"qid": "1", "query": "q", "answers": ["ok"]}\n{"qid": "2", "query": "q", "answers": [3]}\n')
    with pytest.raises(TextFileError, match=r"qa\.jsonl:2: 'answers' must be a list of strings"):
        load_answers(path)


# Qrels --------------------------------------------------------------------------------------


def test_qrels_zero_and_q0_columns(tmp_path):
    path = write(tmp_path / "qrels.txt", "0019 0 d1 2\n19 Q0 d1 1\n-5 0 0007 0\n19 Q0 7 3\n")
    qrels = load_qrels(path)
    assert qrels == {"0019": {"d1": 2}, "19": {"d1": 1, "7": 3}, "-5": {"0007": 0}}


def test_qrels_negative_labels_kept(tmp_path):
    # ClueWeb judgments mark spam with -2; trec_eval counts it as not relevant.
    path = write(tmp_path / "qrels.txt", "1 0 d1 -2\n")
    assert load_qrels(path) == {"1": {"d1": -2}}


def test_qrels_repeated_pair_keeps_last(tmp_path, caplog):
    path = write(tmp_path / "qrels.txt", "1 0 d1 0\n1 0 d1 2\n")
    with caplog.at_level(logging.WARNING):
        assert load_qrels(path) == {"1": {"d1": 2}}
    assert "1 repeated (qid, docid) judgments" in caplog.text


def test_qrels_wrong_column_count_names_line(tmp_path):
    path = write(tmp_path / "qrels.txt", "1 0 d1 1\n\n1 d2 1\n")
    with pytest.raises(TextFileError, match=r"qrels\.txt:3: expected 4 columns"):
        load_qrels(path)


def test_qrels_non_integer_label_names_line(tmp_path):
    path = write(tmp_path / "qrels.txt", "1 0 d1 1\n1 0 d2 0.5\n")
    with pytest.raises(TextFileError, match=r"qrels\.txt:2: relevance '0.5' is not an integer"):
        load_qrels(path)


def test_qrels_gzipped(tmp_path):
    path = tmp_path / "qrels.txt.gz"
    path.write_bytes(gzip.compress(b"1 0 d1 1\n"))
    assert load_qrels(path) == {"1": {"d1": 1}}


def test_qrels_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="qrels.missing.txt"):
        load_qrels(tmp_path / "qrels.missing.txt")


def test_qrels_empty_file(tmp_path):
    path = write(tmp_path / "qrels.txt", "")
    with pytest.raises(TextFileError, match="no judgments"):
        load_qrels(path)


@pytest.mark.data
def test_real_qrels_files():
    dl19 = load_qrels(data_file("dl19-passage/qrels.dl19-passage.txt"))
    assert len(dl19) == 43
    assert sum(len(judged) for judged in dl19.values()) == 9260
    dl21 = load_qrels(data_file("dl21-passage/qrels.dl21-passage.txt"))
    assert sum(len(judged) for judged in dl21.values()) == 10828


# Pyserini names -----------------------------------------------------------------------------

# Anserini reads named topics and qrels from ~/.cache/pyserini/topics-and-qrels
# (user.home of the JVM) and downloads only what is missing there. Pointing
# user.home at a temporary folder with files in place tests the named path
# offline, in a subprocess because a JVM cannot be restarted in this one.
_NAMED_SCRIPT = """
import json, sys
from dear_ir.topics import load_topics, load_qrels
name = "beir-v1.0.0-scifact-test"
result = {"topics": load_topics(name), "qrels": load_qrels(name)}
try:
    load_topics("no-such-topics-name")
except ValueError as error:
    result["unknown"] = str(error)
print(json.dumps(result))
"""


@pytest.mark.slow
def test_pyserini_names_keep_string_ids(tmp_path):
    cache = tmp_path / "home" / ".cache" / "pyserini" / "topics-and-qrels"
    cache.mkdir(parents=True)
    # BEIR topics have string qids in Anserini; pyserini.search.get_topics would
    # still turn "0019" into the integer 19.
    (cache / "topics.beir-v1.0.0-scifact.test.tsv.gz").write_bytes(gzip.compress(b"0019\tleading zeros\n19\tplain\n"))
    write(cache / "qrels.beir-v1.0.0-scifact.test.txt", "0019 0 0007 2\n")
    environment = dict(os.environ, JAVA_TOOL_OPTIONS=f"-Duser.home={tmp_path / 'home'}")
    completed = subprocess.run(
        [sys.executable, "-c", _NAMED_SCRIPT], cwd=REPO_ROOT, env=environment,
        capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["topics"] == {"0019": "leading zeros", "19": "plain"}
    assert result["qrels"] == {"0019": {"0007": 2}}
    assert "neither an existing file nor a Pyserini topics name" in result["unknown"]
