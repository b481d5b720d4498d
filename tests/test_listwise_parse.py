"""Parsing and repairing a listwise model's answer."""

import pytest

from dear_ir.listwise.parse import parse_answer, split_reasoning


@pytest.mark.parametrize(
    "text, count, order, repairs",
    [
        ("[2] > [3] > [1]", 3, [1, 2, 0], {}),
        ("[2] > [2] > [9]", 3, [1, 0, 2], {"duplicate": 1, "out_of_range": 1, "missing": 2}),
        ("I cannot rank these", 3, [0, 1, 2], {"no_identifiers": 1, "missing": 3}),
        ("", 3, [0, 1, 2], {"empty": 1, "missing": 3}),
        ("   \n", 2, [0, 1], {"empty": 1, "missing": 2}),
        ("<think>[3] > [2] seems right", 3, [0, 1, 2], {"unclosed_think": 1, "missing": 3}),
        ("<think>[3] is best</think>", 3, [0, 1, 2], {"empty": 1, "missing": 3}),
        ("<think>[3] is best</think>\n\n[3] > [1] > [2]", 3, [2, 0, 1], {}),
        ("<THINK>[1]</THINK>[2] > [1]", 2, [1, 0], {}),
        ("[0] > [1]", 2, [0, 1], {"out_of_range": 1, "missing": 1}),
        ("3 > 1 > 2", 3, [2, 0, 1], {"unbracketed": 1}),
        ("The ranking is [2] > [1], since passage 3 is off-topic.", 3, [1, 0, 2], {"missing": 1}),
        ("[ 2 ] > [1]", 2, [1, 0], {}),
        ("[12] > [3]", 12, [11, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10], {"missing": 10}),
        ("[1]", 0, [], {"out_of_range": 1}),
    ],
)
def test_parse_answer_cases(text, count, order, repairs):
    parsed = parse_answer(text, count)
    assert parsed.order == order
    assert parsed.repairs == repairs


def test_parse_answer_is_permutation():
    for text in ["[5] > [5] > [1] > [40]", "nothing", "<think>1 2 3", "9 8 7 6 5 4 3 2 1"]:
        parsed = parse_answer(text, 6)
        assert sorted(parsed.order) == list(range(6))


def test_parse_unclosed_think_ignores_digits():
    parsed = parse_answer("<think>Passage [3] answers it, then [1], then [2]", 3)
    assert parsed.order == [0, 1, 2]
    assert parsed.answer == ""
    assert parsed.reasoning.startswith("Passage [3]")


def test_parse_keeps_reasoning():
    parsed = parse_answer("<think>\nStep 1. needs a date.\n</think>\n[2] > [1]", 2)
    assert parsed.reasoning == "Step 1. needs a date."
    assert parsed.answer == "[2] > [1]"


def test_split_reasoning_uses_last_closing_tag():
    reasoning, answer, closed = split_reasoning("<think>a</think> b </think> [1]")
    assert reasoning == "a</think> b"
    assert answer == "[1]"
    assert closed


def test_parse_rejects_negative_count():
    with pytest.raises(ValueError, match="count must not be negative"):
        parse_answer("[1]", -1)
