"""Okapi BM25 over each query's own candidates, and NovelEval's published BM25 row."""

from __future__ import annotations

import math

import pytest

from conftest import data_file
from dear_ir.candidates import Candidates, Passage
from dear_ir.okapi import okapi_scores, rank_candidates


def test_scores_by_hand():
    # N = 3, avgdl = 8/3. "red": df 1, idf = ln(2.5 / 1.5). "fish": df 3, idf = ln(0.5 / 3.5) < 0,
    # floored to 0.25 * mean idf over {red, fish, blue, one, two}.
    idf_rare = math.log(2.5 / 1.5)
    floor = 0.25 * (4 * idf_rare + math.log(0.5 / 3.5)) / 5
    norm_short = 1.5 * (1 - 0.75 + 0.75 * 2 / (8 / 3))
    expected_first = idf_rare * 2.5 / (1 + norm_short) + floor * 2.5 / (1 + norm_short)
    scores = okapi_scores("red fish", ["red fish", "blue fish", "one fish two fish"])
    assert scores[0] == pytest.approx(expected_first)
    assert scores[1] == pytest.approx(floor * 2.5 / (1 + norm_short))


def test_case_and_punctuation_kept():
    assert okapi_scores("Fish", ["fish", "a b", "c d"])[0] == 0.0
    assert okapi_scores("fish", ["fish.", "a b", "c d"])[0] == 0.0


def test_empty_candidates():
    assert okapi_scores("query", []) == []


def test_ties_keep_candidate_order():
    query = Candidates("q", "nothing matches", [Passage("a", "x y", 0.0), Passage("b", "z w", 0.0)])
    run = rank_candidates([query])
    assert run.docids("q") == ["a", "b"]


@pytest.mark.data
def test_noveleval_published_bm25_row(tmp_path, monkeypatch):
    from dear_ir.collections import get_collection, resolve
    from dear_ir.evaluate import evaluate_run
    from dear_ir.pipeline import first_stage
    from dear_ir.runs import read_run
    from dear_ir.topics import load_qrels

    data_file("noveleval-2306/data.json")
    resources = resolve(get_collection("noveleval"), "offline")
    output = tmp_path / "noveleval.bm25.trec"
    first_stage(resources, output, hits=100)

    values = evaluate_run(read_run(output), load_qrels(resources.qrels), ["ndcg_cut_1", "ndcg_cut_5", "ndcg_cut_10"])
    assert round(100 * values["ndcg_cut_1"], 2) == 33.33
    assert round(100 * values["ndcg_cut_5"], 2) == 45.96
    assert round(100 * values["ndcg_cut_10"], 2) == 55.77


def test_docstring_examples():
    import doctest

    import dear_ir.okapi
    import dear_ir.tables

    for module in (dear_ir.okapi, dear_ir.tables):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0
