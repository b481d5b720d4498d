"""Listwise fine-tuning rows in DeAR-COT's layout, built from a teacher ranking."""

import json

import pytest

from dear_ir.candidates import Candidates, Passage
from dear_ir.listwise.data import (
    build_rows,
    main,
    messages_from_row,
    read_rows,
    row_from_messages,
    teacher_order,
    write_rows,
)
from dear_ir.listwise.prompt import build_messages
from dear_ir.runs import Hit, Run, write_run


def make_query(count, qid="q1"):
    passages = [Passage(f"d{i}", f"text of d{i}", 100.0 - i) for i in range(count)]
    return Candidates(qid, "what is d", passages)


def test_teacher_order_unscored_last():
    assert teacher_order(["a", "b", "c"], {"c": 1.0}) == [2, 0, 1]
    assert teacher_order(["a", "b", "c"], {"a": 0.0, "b": 2.0, "c": 2.0}) == [1, 2, 0]


def test_rows_roundtrip_messages():
    messages = build_messages("q", ["one", "two"])
    row = row_from_messages(messages, "[2] > [1]")
    assert row["system"] == messages[0]["content"]
    assert row["instruction"] == messages[-1]["content"]
    assert row["input"] == ""
    assert row["history"][0] == [messages[1]["content"], "Okay, please provide the passages."]
    assert row["history"][2] == ["[2] two", "Received passage [2]."]
    assert messages_from_row(row) == (messages, "[2] > [1]")


def test_rows_think_joins_output():
    row = row_from_messages(build_messages("q", ["one", "two"]), "[2] > [1]", think="Two names it.")
    _, target = messages_from_row(row)
    assert target == "<think>\nTwo names it.\n</think>\n\n[2] > [1]"

    row["output"] = target
    assert messages_from_row(row)[1] == target


def test_rows_follow_teacher():
    teacher = {"q1": {"d3": 2.0, "d1": 1.0}}
    rows = list(build_rows([make_query(5)], teacher, window=20, rank_end=20))
    assert len(rows) == 1
    assert rows[0]["qid"] == "q1"
    assert rows[0]["docids"] == ["d0", "d1", "d2", "d3", "d4"]
    assert rows[0]["output"] == "[4] > [2] > [1] > [3] > [5]"
    assert len(rows[0]["history"]) == 1 + 5


def test_rows_windows_and_skips():
    # Windows [5, 25) and [0, 15): only the first contains a scored passage.
    teacher = {"q1": {"d20": 1.0}, "q2": {}}
    rows = list(build_rows([make_query(25), make_query(25, qid="q2")], teacher, window=20, step=10, rank_end=25))
    assert [(row["qid"], row["docids"][0]) for row in rows] == [("q1", "d5")]
    assert rows[0]["output"].startswith("[16] > [1] > [2]")


def test_rows_shuffle_seeded():
    teacher = {"q1": {f"d{i}": float(i) for i in range(8)}}
    first = list(build_rows([make_query(8)], teacher, shuffle=True, seed=3))
    again = list(build_rows([make_query(8)], teacher, shuffle=True, seed=3))
    assert first == again
    assert first[0]["docids"] != [f"d{i}" for i in range(8)]

    # Whatever the prompt order, the target names d7 first.
    best = first[0]["docids"].index("d7") + 1
    assert first[0]["output"].startswith(f"[{best}] >")


def test_rows_write_and_read(tmp_path):
    rows = list(build_rows([make_query(3)], {"q1": {"d2": 1.0}}))
    path = write_rows(rows, tmp_path / "rows.jsonl")
    assert read_rows(path) == rows

    listed = tmp_path / "rows.json"
    listed.write_text(json.dumps(rows))
    assert read_rows(listed) == rows


def test_rows_read_invalid_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"system": "s"}\nnot json\n')
    with pytest.raises(ValueError, match="rows.jsonl:2"):
        read_rows(path)


def test_messages_from_row_missing_keys():
    with pytest.raises(ValueError, match="lacks"):
        messages_from_row({"system": "s", "qid": "7"})


def test_data_command_with_qrels(tmp_path):
    write_run(Run({"q1": [Hit("d0", 3.0), Hit("d1", 2.0), Hit("d2", 1.0)]}), tmp_path / "bm25.trec")
    (tmp_path / "topics.tsv").write_text("q1\twhat is d\n")
    (tmp_path / "corpus.tsv").write_text("d0\tzero\nd1\tone\nd2\ttwo\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d2 2\nq1 0 d0 1\n")

    status = main([
        "--input", str(tmp_path / "bm25.trec"), "--topics", str(tmp_path / "topics.tsv"),
        "--corpus", str(tmp_path / "corpus.tsv"), "--qrels", str(tmp_path / "qrels.txt"),
        "--output", str(tmp_path / "rows.jsonl"),
    ])
    assert status == 0
    rows = read_rows(tmp_path / "rows.jsonl")
    assert len(rows) == 1
    assert rows[0]["output"] == "[3] > [1] > [2]"
    assert rows[0]["history"][1] == ["[1] zero", "Received passage [1]."]
