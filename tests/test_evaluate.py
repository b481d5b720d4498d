"""Evaluation: trec_eval -c conventions through pytrec_eval, the CLI, and QA Top-k accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import data_file
from dear_ir.corpus import CorpusFile
from dear_ir.evaluate import (
    answer_text,
    canonical_metric,
    evaluate_answers,
    evaluate_per_query,
    evaluate_run,
    main,
    markdown_table,
)
from dear_ir.runs import Run, read_run
from dear_ir.topics import load_qrels

# Graded qrels with a query without relevant documents (2), a judged query
# missing from the run (3) and a run query without judgments (9). The expected
# values were computed by Anserini's Java port of trec_eval (anserini 1.7.1
# fatjar, class trec_eval) with -c, and -l 1 or -l 2.
QRELS = """\
1 0 d1 3
1 0 d2 0
1 0 d3 1
1 0 d4 2
2 0 d1 0
2 0 d5 0
3 Q0 d9 2
4 0 d7 1
"""
RUN = """\
1 Q0 d3 1 10 r
1 Q0 d1 2 9 r
1 Q0 d2 3 8 r
1 Q0 d4 4 7 r
1 Q0 d8 5 6 r
2 Q0 d1 1 5 r
2 Q0 d5 2 4 r
4 Q0 d6 1 3 r
4 Q0 d7 2 2 r
9 Q0 d7 1 2 r
"""
TREC_EVAL_LEVEL_1 = {"ndcg_cut_1": 0.0833, "ndcg_cut_5": 0.3548, "ndcg_cut_10": 0.3548, "map": 0.3542, "recall_100": 0.5000}
TREC_EVAL_LEVEL_2 = {"ndcg_cut_1": 0.0833, "ndcg_cut_5": 0.3548, "ndcg_cut_10": 0.3548, "map": 0.1250, "recall_100": 0.2500}


@pytest.fixture
def fixture_files(tmp_path) -> tuple[Path, Path]:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(QRELS)
    run = tmp_path / "run.txt"
    run.write_text(RUN)
    return qrels, run


@pytest.mark.parametrize("level, expected", [(1, TREC_EVAL_LEVEL_1), (2, TREC_EVAL_LEVEL_2)])
def test_matches_trec_eval(fixture_files, level, expected):
    qrels, run = fixture_files
    means = evaluate_run(read_run(run), load_qrels(qrels), relevance_level=level)
    assert means.keys() == expected.keys()
    for metric, value in expected.items():
        assert means[metric] == pytest.approx(value, abs=5e-5), metric


def test_missing_judged_query_scores_zero(fixture_files):
    qrels, run = fixture_files
    per_query = evaluate_per_query(read_run(run), load_qrels(qrels))
    assert set(per_query) == {"1", "2", "3", "4"}
    assert per_query["3"] == {metric: 0.0 for metric in TREC_EVAL_LEVEL_1}
    assert per_query["1"]["map"] == pytest.approx(0.9167, abs=5e-5)


def test_unjudged_run_query_ignored(fixture_files):
    qrels, run = fixture_files
    per_query = evaluate_per_query(read_run(run), load_qrels(qrels))
    assert "9" not in per_query


def test_empty_run_scores_zero(fixture_files):
    qrels, _ = fixture_files
    means = evaluate_run(Run(name="empty"), load_qrels(qrels))
    assert means == {metric: 0.0 for metric in TREC_EVAL_LEVEL_1}


@pytest.mark.parametrize("order, expected", [(["a", "b"], 0.0), (["b", "a"], 1.0)])
def test_tied_scores_keep_run_order(order, expected):
    # trec_eval would break the tie by docid; the run's order must win instead.
    run = Run({"1": [(docid, 1.0) for docid in order]})
    means = evaluate_run(run, {"1": {"a": 0, "b": 1}}, metrics=["ndcg_cut_1"])
    assert means["ndcg_cut_1"] == expected


@pytest.mark.parametrize("order", [["a", "b"], ["b", "a"]])
def test_trec_eval_ties_sort_by_docid(order):
    # trec_eval puts tied hits in descending docid order, so "b" comes first.
    run = Run({"1": [(docid, 1.0) for docid in order]})
    means = evaluate_run(run, {"1": {"a": 0, "b": 1}}, metrics=["ndcg_cut_1"], ties="trec_eval")
    assert means["ndcg_cut_1"] == 1.0


def test_unknown_tie_rule_rejected():
    with pytest.raises(ValueError, match="ties must be one of"):
        evaluate_run(Run({"1": [("a", 1.0)]}), {"1": {"a": 1}}, ties="random")


def test_string_qids_not_merged():
    run = Run({"0019": [("d", 1.0)], "19": [("x", 1.0)]})
    qrels = {"0019": {"d": 1}, "19": {"d": 1}}
    per_query = evaluate_per_query(run, qrels, metrics=["recall_100"])
    assert per_query == {"0019": {"recall_100": 1.0}, "19": {"recall_100": 0.0}}


def test_empty_qrels_rejected():
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate_run(Run({"1": [("d", 1.0)]}), {})


# Metric names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("ndcg_cut_10", "ndcg_cut_10"),
    ("nDCG@10", "ndcg_cut_10"),
    ("R@1000", "recall_1000"),
    ("recall@100", "recall_100"),
    ("MAP@100", "map_cut_100"),
    ("P@5", "P_5"),
    ("map", "map"),
    ("recip_rank", "recip_rank"),
])
def test_canonical_metric(name, expected):
    assert canonical_metric(name) == expected


@pytest.mark.parametrize("name", ["ndcg_at_10", "bleu", "ndcg_cut_x", "MRR@10"])
def test_unknown_metric_rejected(name):
    with pytest.raises(ValueError, match="metric"):
        canonical_metric(name)


def test_other_metrics_computed(fixture_files):
    qrels, run = fixture_files
    means = evaluate_run(read_run(run), load_qrels(qrels), metrics=["P_5", "recip_rank", "nDCG@10"])
    assert set(means) == {"P_5", "recip_rank", "ndcg_cut_10"}


# Command line -------------------------------------------------------------------------------


def test_cli_markdown_table(fixture_files, capsys):
    qrels, run = fixture_files
    other = run.with_name("other.txt")
    other.write_text(RUN.replace("1 Q0 d3 1 10 r\n", ""))
    assert main(["--qrels", str(qrels), str(run), str(other)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| run | ndcg_cut_1 | ndcg_cut_5 | ndcg_cut_10 | map | recall_100 |"
    assert len(lines) == 4
    assert lines[2] == f"| {run} | 0.0833 | 0.3548 | 0.3548 | 0.3542 | 0.5000 |"
    assert lines[3].startswith(f"| {other} |")


def test_cli_json_with_options(fixture_files, capsys):
    qrels, run = fixture_files
    status = main(["--qrels", str(qrels), str(run), "--format", "json", "--metrics", "map", "R@100", "--relevance-level", "2"])
    assert status == 0
    output = json.loads(capsys.readouterr().out)
    assert output.keys() == {str(run)}
    assert output[str(run)]["map"] == pytest.approx(0.125)
    assert output[str(run)]["recall_100"] == pytest.approx(0.25)


def test_cli_per_query_json(fixture_files, capsys):
    qrels, run = fixture_files
    assert main(["--qrels", str(qrels), str(run), "--format", "json", "--per-query", "--metrics", "map"]) == 0
    output = json.loads(capsys.readouterr().out)[str(run)]
    assert output["mean"]["map"] == pytest.approx(0.3542, abs=5e-5)
    assert output["per_query"]["3"] == {"map": 0.0}


def test_cli_per_query_markdown(fixture_files, capsys):
    qrels, run = fixture_files
    assert main(["--qrels", str(qrels), str(run), "--per-query", "--metrics", "map"]) == 0
    output = capsys.readouterr().out
    assert "| qid | map |" in output
    assert "| 3 | 0.0000 |" in output


def test_cli_missing_run_file(fixture_files, tmp_path, caplog):
    qrels, _ = fixture_files
    assert main(["--qrels", str(qrels), str(tmp_path / "missing.run")]) == 1
    assert "missing.run" in caplog.text


def test_markdown_table_layout():
    table = markdown_table({"bm25": {"map": 0.25}})
    assert table.splitlines() == ["| run | map |", "|---|---:|", "| bm25 | 0.2500 |"]


# Reference values on the shared data ---------------------------------------------------------


@pytest.mark.data
def test_dl19_bm25_reference():
    run = read_run(data_file("rankllm-retrieve-results/BM25/trec_results_dl19.txt"))
    qrels = load_qrels(data_file("dl19-passage/qrels.dl19-passage.txt"))
    means = evaluate_run(run, qrels, metrics=["ndcg_cut_10"])
    assert round(means["ndcg_cut_10"], 4) == 0.5058


@pytest.mark.data
def test_covid_bm25_reference():
    run = read_run(data_file("rankllm-retrieve-results/BM25/trec_results_covid.txt"))
    qrels = load_qrels(data_file("beir-trec-covid/qrels.beir-v1.0.0-trec-covid.test.txt"))
    means = evaluate_run(run, qrels, metrics=["ndcg_cut_10"])
    assert round(means["ndcg_cut_10"], 4) == 0.5947


@pytest.mark.data
def test_dl21_ties_rule_matters():
    # In this run 58 hits tie with the hit above them. trec_eval computes nDCG@5 = 0.4494.
    run = read_run(data_file("rankllm-retrieve-results/BM25/trec_results_dl21.txt"))
    qrels = load_qrels(data_file("dl21-passage/qrels.dl21-passage.txt"))
    in_run_order = evaluate_run(run, qrels, metrics=["ndcg_cut_5"])
    as_trec_eval = evaluate_run(run, qrels, metrics=["ndcg_cut_5"], ties="trec_eval")
    assert round(as_trec_eval["ndcg_cut_5"], 4) == 0.4494
    assert round(in_run_order["ndcg_cut_5"], 4) == 0.4485


# Open-domain QA -----------------------------------------------------------------------------

# DPR-style passages: the answers "1879" and "Einstein" also appear in a title,
# which must not count, because Pyserini matches answers in the text only.
PASSAGES = """\
id\ttext\ttitle
1\tThe physicist was born in Ulm in 1879.\tAlbert Einstein
2\tA list of prizes awarded in 1921.\tNobel Prize
3\tUlm is a city on the Danube.\tUlm
4\tHe received the prize for the photoelectric effect.\tEinstein
"""
ANSWERS = {
    "0": ["1879"],            # in passage 1, ranked second
    "1": ["photoelectric"],   # in passage 4, ranked third
    "2": ["Einstein"],        # only in titles
    "3": ["DANUBE"],          # matched without case, ranked first
}
QA_RUN = {
    "0": [("3", 3.0), ("1", 2.0), ("2", 1.0)],
    "1": [("1", 3.0), ("2", 2.0), ("4", 1.0)],
    "2": [("1", 2.0), ("4", 1.0)],
    "3": [("3", 1.0)],
}


@pytest.fixture
def passages(tmp_path) -> CorpusFile:
    path = tmp_path / "psgs.tsv"
    path.write_text(PASSAGES)
    return CorpusFile(path)


def test_top_k_accuracy(passages):
    accuracy = evaluate_answers(Run(QA_RUN), ANSWERS, passages, top_k=[1, 2, 3])
    assert accuracy == {"top_1": 0.25, "top_2": 0.5, "top_3": 0.75}


def test_top_k_missing_question_counts_as_miss(passages):
    run = Run({qid: hits for qid, hits in QA_RUN.items() if qid != "3"})
    accuracy = evaluate_answers(run, ANSWERS, passages, top_k=[1, 3])
    assert accuracy == {"top_1": 0.0, "top_3": 0.5}


def test_top_k_regex_answers(passages):
    accuracy = evaluate_answers(Run({"0": [("3", 1.0)]}), {"0": [r"Dan\w+"]}, passages, top_k=[1], regex=True)
    assert accuracy == {"top_1": 1.0}


def test_top_k_unknown_docid_raises(passages):
    with pytest.raises(KeyError, match="docid 'x9'"):
        evaluate_answers(Run({"0": [("x9", 1.0)]}), {"0": ["a"]}, passages, top_k=[1])


class _TextOnlySource:
    """A source with text() only, storing passages as a DPR index does: "title\\ntext"."""

    name = "dpr-index"

    def text(self, docid):
        return {"1": "Albert Einstein\nThe physicist was born in Ulm in 1879."}.get(docid)


def test_answer_text_drops_title_line():
    assert answer_text(_TextOnlySource(), "1") == "The physicist was born in Ulm in 1879."
    assert answer_text(_TextOnlySource(), "2") is None


def test_cli_top_k(passages, tmp_path, capsys):
    run_path = tmp_path / "qa.run"
    run_path.write_text("".join(
        f"{qid} Q0 {docid} {rank} {score} qa\n"
        for qid, hits in QA_RUN.items()
        for rank, (docid, score) in enumerate(hits, start=1)
    ))
    answers_path = tmp_path / "qa.jsonl"
    answers_path.write_text("".join(
        json.dumps({"qid": qid, "question": f"question {qid}", "answers": answers}) + "\n"
        for qid, answers in ANSWERS.items()
    ))
    status = main([
        "--answers", str(answers_path), "--corpus", str(passages.path),
        "--metrics", "1", "3", "--format", "json", str(run_path),
    ])
    assert status == 0
    assert json.loads(capsys.readouterr().out) == {str(run_path): {"top_1": 0.25, "top_3": 0.75}}
