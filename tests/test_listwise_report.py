"""The listwise report, on small hand-made runs, sidecars and qrels."""

import json

import pytest

from dear_ir.listwise.report import (
    clean_answers,
    cost_per_query,
    first_token_rows,
    format_report,
    load_listwise_run,
    main,
    read_sidecar,
    set_rows,
    sidecar_path,
)
from dear_ir.runs import read_run

# q1 has one relevant passage (d3), q2 one (d5); q3 is judged but never reranked.
QRELS = {"q1": {"d3": 1}, "q2": {"d5": 2}, "q3": {"d9": 1}}


def write_run(path, rankings):
    lines = []
    for qid, docids in rankings.items():
        for rank, docid in enumerate(docids, start=1):
            lines.append(f"{qid} Q0 {docid} {rank} {100 - rank} test\n")
    path.write_text("".join(lines))
    return path


def window_record(qid, window, repairs=None, forward_passes=40, seconds=2.0):
    return {"qid": qid, "window": window, "start": 0, "end": 3, "docids": [], "prompt_tokens": 100,
            "new_tokens": forward_passes, "forward_passes": forward_passes, "batch": 1, "seconds": seconds,
            "raw_answer": "", "reasoning": "", "permutation": [1, 2, 3], "repairs": repairs or {}}


def write_sidecar(run_path, records):
    path = sidecar_path(run_path)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.fixture
def input_run(tmp_path):
    # The relevant passages are at rank 3 in the input, so a listwise run that moves them up scores higher.
    return write_run(tmp_path / "set.minilm.trec", {
        "q1": ["d1", "d2", "d3"], "q2": ["d4", "d6", "d5"], "q3": ["d7", "d8", "d9"],
    })


def test_sidecar_path_replaces_trec():
    assert sidecar_path("runs/x.zero-shot.trec").as_posix() == "runs/x.zero-shot.reasoning.jsonl"
    assert sidecar_path("runs/x.run").as_posix() == "runs/x.run.reasoning.jsonl"


def test_sidecar_later_record_wins(tmp_path):
    path = tmp_path / "a.reasoning.jsonl"
    first = window_record("q1", 0, repairs={"missing": 2})
    again = window_record("q1", 0)
    path.write_text(json.dumps(first) + "\n" + json.dumps(window_record("q1", 1)) + "\n"
                    + json.dumps(again) + "\n" + '{"qid": "q2", "win')

    records = read_sidecar(path)

    assert len(records) == 2
    assert clean_answers(records) == (2, 2)


def test_clean_answers_counts_repaired_windows():
    records = [window_record("q1", 0), window_record("q1", 1, {"missing": 1}), window_record("q2", 0, {"duplicate": 2})]
    assert clean_answers(records) == (1, 3)
    assert clean_answers([]) == (0, 0)


def test_cost_per_query_sums_windows():
    records = [
        window_record("q1", 0, forward_passes=40, seconds=3.0),
        window_record("q1", 1, forward_passes=20, seconds=1.0),
        window_record("q2", 0, forward_passes=30, seconds=2.0),
    ]
    cost = cost_per_query(records)
    assert cost["queries"] == 2
    assert cost["windows"] == 3
    assert cost["forward_passes"] == pytest.approx(45.0)
    assert cost["seconds"] == pytest.approx(3.0)


def test_set_rows_compare_on_reranked_queries(tmp_path, input_run):
    listwise = write_run(tmp_path / "set.zero-shot.trec", {"q1": ["d3", "d1", "d2"], "q2": ["d5", "d4", "d6"]})
    write_sidecar(listwise, [window_record("q1", 0), window_record("q2", 0, {"missing": 1})])

    [row] = set_rows("set", QRELS, read_run(input_run), [listwise])

    # q3 is judged but not in the listwise run, so neither side counts it.
    assert row["queries"] == 2
    assert row["status"] == "done"
    assert (row["clean"], row["windows"]) == (1, 2)
    assert row["input"]["ndcg_cut_10"] == pytest.approx(0.5)
    assert row["listwise"]["ndcg_cut_10"] == pytest.approx(1.0)


def test_set_rows_missing_run(tmp_path, input_run):
    [row] = set_rows("set", QRELS, read_run(input_run), [tmp_path / "set.fine-tuned.trec"])
    assert row["status"] == "missing"
    assert "windows" not in row


def test_partial_run_is_reported(tmp_path, input_run):
    output = tmp_path / "set.fine-tuned.trec"
    partial = tmp_path / "set.fine-tuned.trec.partial.jsonl"
    partial.write_text(
        json.dumps({"settings": {"window": 3}}) + "\n"
        + json.dumps({"qid": "q1", "hits": [["d3", 3.0], ["d1", 2.0], ["d2", 1.0]]}) + "\n"
    )
    # The sidecar already contains a window of q2, which the partial run has not saved.
    write_sidecar(output, [window_record("q1", 0), window_record("q2", 0, {"missing": 3})])

    loaded = load_listwise_run(output)
    [row] = set_rows("set", QRELS, read_run(input_run), [output])

    assert not loaded.finished
    assert list(loaded.run) == ["q1"]
    assert row["status"] == "partial, 1 queries"
    assert (row["clean"], row["windows"]) == (1, 1)
    assert row["listwise"]["ndcg_cut_10"] == pytest.approx(1.0)


def test_first_token_rows_use_common_queries(tmp_path):
    generated = write_run(tmp_path / "set.w9.trec", {"q1": ["d3", "d1", "d2"], "q2": ["d4", "d6", "d5"]})
    first_token = write_run(tmp_path / "set.w9.first-token.trec", {"q1": ["d1", "d3", "d2"]})
    write_sidecar(generated, [window_record("q1", 0, forward_passes=40, seconds=4.0),
                              window_record("q2", 0, forward_passes=50, seconds=6.0)])
    write_sidecar(first_token, [window_record("q1", 0, forward_passes=1, seconds=0.5)])

    rows = first_token_rows("set", QRELS, generated, first_token)

    assert [row["mode"] for row in rows] == ["generation", "first-token"]
    assert rows[0]["queries"] == 1
    assert rows[0]["forward_passes"] == pytest.approx(40.0)
    assert rows[0]["seconds"] == pytest.approx(4.0)
    assert rows[1]["forward_passes"] == pytest.approx(1.0)
    assert rows[0]["metrics"]["ndcg_cut_10"] == pytest.approx(1.0)
    assert rows[1]["metrics"]["ndcg_cut_10"] < 1.0


def test_format_report_shows_missing_and_rates(tmp_path, input_run):
    listwise = write_run(tmp_path / "set.zero-shot.trec", {"q1": ["d3", "d1", "d2"]})
    write_sidecar(listwise, [window_record("q1", 0), window_record("q1", 1, {"missing": 1})])
    rows = set_rows("set", QRELS, read_run(input_run), [listwise, tmp_path / "set.fine-tuned.trec"])

    report = format_report(rows, [])

    assert "| set | set.zero-shot.trec | done | 1 | 1/2 (50.0%) | 50.00 | 100.00 |" in report
    assert "| set | set.fine-tuned.trec | missing |" in report


def test_main_writes_report(tmp_path, input_run, capsys):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{qid} 0 {docid} {grade}\n" for qid, judged in QRELS.items()
                             for docid, grade in judged.items()))
    listwise = write_run(tmp_path / "set.zero-shot.trec", {"q1": ["d3", "d1", "d2"], "q2": ["d5", "d4", "d6"]})
    write_sidecar(listwise, [window_record("q1", 0), window_record("q2", 0)])
    output = tmp_path / "report.md"

    code = main(["--set", "set", str(qrels), str(input_run), str(listwise),
                 "--relevance-level", "set=2", "--output", str(output)])

    assert code == 0
    assert "2/2 (100.0%)" in capsys.readouterr().out
    assert "2/2 (100.0%)" in output.read_text()


def test_main_reports_missing_input(tmp_path, capsys):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d3 1\n")

    code = main(["--set", "set", str(qrels), str(tmp_path / "absent.trec"), str(tmp_path / "set.zero-shot.trec")])

    assert code == 0
    assert "input run" in capsys.readouterr().out


def test_main_rejects_bad_relevance_level(tmp_path, input_run):
    with pytest.raises(SystemExit):
        main(["--set", "set", "q.txt", str(input_run), "x.trec", "--relevance-level", "dl19"])
