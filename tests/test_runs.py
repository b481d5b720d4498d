"""TREC run files: string ids, duplicates, ties, malformed lines, atomic writes, resuming."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dear_ir.runs import Hit, PartialRun, Run, RunFormatError, read_run, strictly_decreasing, write_run


def write_text(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_ids_stay_strings(tmp_path):
    path = write_text(tmp_path / "run.trec", "0019 Q0 007 1 3.0 t\n19 Q0 7 1 2.0 t\n-5 0 d 1 1.0 t\n")
    run = read_run(path)
    assert set(run) == {"0019", "19", "-5"}
    assert run.docids("0019") == ["007"]
    assert run.docids("19") == ["7"]


def test_queries_in_any_order_sorted_by_score(tmp_path):
    path = write_text(tmp_path / "run.trec", "q2 Q0 a 2 1.0 t\nq1 Q0 b 1 5.0 t\nq2 Q0 c 1 3.0 t\n")
    run = read_run(path)
    assert run.docids("q2") == ["c", "a"]
    assert run.docids("q1") == ["b"]


def test_duplicate_docid_keeps_best_score(tmp_path, caplog):
    path = write_text(tmp_path / "run.trec", "q Q0 a 1 1.0 t\nq Q0 a 2 4.0 t\nq Q0 b 3 2.0 t\nq Q0 b 4 0.5 t\n")
    with caplog.at_level(logging.WARNING):
        run = read_run(path)
    assert run["q"] == [Hit("a", 4.0), Hit("b", 2.0)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 repeated" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "line, message",
    [
        ("q Q0 a 1 1.0", "expected 6 columns"),
        ("q Q0 a 1 high t", "is not a number"),
        ("q Q0 a 1 nan t", "NaN"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write_text(tmp_path / "bad.trec", f"q Q0 ok 1 2.0 t\n{line}\n")
    with pytest.raises(RunFormatError) as error:
        read_run(path)
    assert f"{path}:2" in str(error.value)
    assert message in str(error.value)


def test_missing_run_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.trec"):
        read_run(tmp_path / "nothing.trec")


def test_non_utf8_run_file_rejected(tmp_path):
    path = tmp_path / "latin1.trec"
    path.write_bytes(b"q Q0 caf\xe9 1 1.0 t\n")
    with pytest.raises(RunFormatError, match="not valid UTF-8"):
        read_run(path)


def test_written_scores_strictly_decrease(tmp_path):
    run = Run({"q": [("a", 1.0), ("b", 1.0), ("c", 2.0), ("d", float("nan")), ("e", 0.5)]})
    path = write_run(run, tmp_path / "out.trec", tag="tag")
    lines = path.read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["a", "b", "c", "d", "e"]
    assert [line.split()[3] for line in lines] == ["1", "2", "3", "4", "5"]
    assert all(line.split()[1] == "Q0" for line in lines)
    # trec_eval stores scores as 32-bit floats: each must be below the last there too.
    scores = [np.float32(float(line.split()[4])) for line in lines]
    assert all(a > b for a, b in zip(scores, scores[1:]))


def test_ties_keep_order_in_pytrec_eval():
    import pytrec_eval

    run = Run({"q": [("z", 1.0), ("a", 1.0)]})
    qrels = {"q": {"z": 1, "a": 0}}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_1"})
    assert evaluator.evaluate(run.to_pytrec())["q"]["ndcg_cut_1"] == 1.0


def test_strictly_decreasing_keeps_distinct_scores():
    assert strictly_decreasing([3.0, 2.0, 1.0]) == [3.0, 2.0, 1.0]


def test_failed_write_leaves_no_file(tmp_path):
    run = Run({"q": [("a", 1.0)], "bad qid": [("b", 1.0)]})
    target = tmp_path / "out.trec"
    with pytest.raises(ValueError, match="bad qid"):
        write_run(run, target)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_old_file(tmp_path):
    target = write_run(Run({"q": [("a", 1.0)]}), tmp_path / "out.trec")
    before = target.read_text()
    with pytest.raises(ValueError):
        write_run(Run({"q": [("has space", 1.0)]}), target)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.trec"]


def test_partial_run_resumes_and_drops_torn_line(tmp_path):
    output = tmp_path / "out.trec"
    partial = PartialRun(output, {"model": "m"})
    partial.add("q1", [Hit("a", 2.0), Hit("b", 1.0)])
    partial.add("q2", [Hit("c", 1.0)])
    with open(partial.path, "a", encoding="utf-8") as handle:
        handle.write('{"qid": "q3", "hits": [["d", 1')  # a crash mid-write

    resumed = PartialRun(output, {"model": "m"})
    assert "q1" in resumed
    assert "q2" in resumed
    assert "q3" not in resumed
    resumed.add("q3", [Hit("d", 1.0)])
    assert set(PartialRun(output, {"model": "m"}).finished) == {"q1", "q2", "q3"}


def test_partial_run_rejects_other_settings(tmp_path):
    output = tmp_path / "out.trec"
    PartialRun(output, {"model": "m"}).add("q1", [Hit("a", 1.0)])
    with pytest.raises(ValueError, match="other settings"):
        PartialRun(output, {"model": "other"})
