"""Parse a listwise model's answer into a permutation, repairing what is broken.

A model asked for ``[2] > [1] > [3]`` may also reason first, repeat or invent
identifiers, stop early, or refuse. `parse_answer` always returns a full
permutation of the window and counts each repair by kind, so a run can report
how often the model's answer was not a clean ranking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Repair kinds, the keys of `ParsedAnswer.repairs`. The first three mean that
# no identifier could be read at all, and exclude each other.
UNCLOSED_THINK = "unclosed_think"  # <think> without </think>: the answer was cut off in the reasoning
EMPTY = "empty"  # nothing after the reasoning
NO_IDENTIFIERS = "no_identifiers"  # text without any number, such as a refusal
UNBRACKETED = "unbracketed"  # no [i] identifiers, so bare numbers were read instead
DUPLICATE = "duplicate"  # an identifier repeated after its first mention, dropped
OUT_OF_RANGE = "out_of_range"  # an identifier outside 1..N, dropped
MISSING = "missing"  # a passage the answer left out, appended in input order

REPAIR_KINDS = (UNCLOSED_THINK, EMPTY, NO_IDENTIFIERS, UNBRACKETED, DUPLICATE, OUT_OF_RANGE, MISSING)

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_BRACKETED_ID = re.compile(r"\[\s*(\d+)\s*\]")
_BARE_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class ParsedAnswer:
    """A model answer read as a ranking of one window."""

    order: list[int]  # 0-based indexes into the window, best first, each exactly once
    answer: str  # the text after the reasoning, which the identifiers were read from
    reasoning: str  # the text inside <think>, empty when there is none
    repairs: dict[str, int] = field(default_factory=dict)  # repair kind -> count, only kinds that occurred


def split_reasoning(text: str) -> tuple[str, str, bool]:
    """Split a model output into (reasoning, answer, closed).

    The answer is the text after the last ``</think>``. A ``<think>`` that is
    never closed leaves no answer, because the digits inside reasoning name
    passages under discussion, not a ranking. Output without tags is all answer.

    >>> split_reasoning("<think>[1] looks off-topic</think> [2] > [1]")
    ('[1] looks off-topic', '[2] > [1]', True)
    >>> split_reasoning("<think>[3] answers the query, so")
    ('[3] answers the query, so', '', False)
    """
    closings = list(_THINK_CLOSE.finditer(text))
    if closings:
        last = closings[-1]
        reasoning = _THINK_OPEN.sub("", text[: last.start()], count=1)
        return reasoning.strip(), text[last.end():].strip(), True

    opening = _THINK_OPEN.search(text)
    if opening:
        return text[opening.end():].strip(), "", False
    return "", text.strip(), True


def parse_answer(text: str, count: int) -> ParsedAnswer:
    """Read the ranking of a window of `count` passages from a model's output.

    Identifiers are 1-based as in the prompt. When the answer contains ``[i]``
    identifiers only those are read, so numbers in a stray sentence do not
    count; otherwise bare numbers are read (``2 > 1 > 3``). Repeated and
    out-of-range identifiers are dropped, and the passages the answer left out
    follow in their input order.

    >>> parse_answer("[2] > [3] > [1]", 3).order
    [1, 2, 0]
    >>> parsed = parse_answer("[2] > [2] > [9]", 3)
    >>> parsed.order, parsed.repairs
    ([1, 0, 2], {'duplicate': 1, 'out_of_range': 1, 'missing': 2})
    >>> parse_answer("I cannot rank these passages.", 2).repairs
    {'no_identifiers': 1, 'missing': 2}
    >>> parse_answer("<think>[3] is clearly the best", 3).repairs
    {'unclosed_think': 1, 'missing': 3}
    >>> parse_answer("<think>[1] is vague.</think>\\n3 > 1", 3).order
    [2, 0, 1]
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")

    reasoning, answer, closed = split_reasoning(text)
    repairs: dict[str, int] = {}

    def add(kind: str, number: int = 1) -> None:
        if number:
            repairs[kind] = repairs.get(kind, 0) + number

    identifiers: list[int] = []
    if not closed:
        add(UNCLOSED_THINK)
    elif not answer:
        add(EMPTY)
    else:
        identifiers = [int(match) for match in _BRACKETED_ID.findall(answer)]
        if not identifiers:
            identifiers = [int(match) for match in _BARE_NUMBER.findall(answer)]
            if identifiers:
                add(UNBRACKETED)
            else:
                add(NO_IDENTIFIERS)

    order: list[int] = []
    seen: set[int] = set()
    for identifier in identifiers:
        index = identifier - 1
        if not 0 <= index < count:
            add(OUT_OF_RANGE)
        elif index in seen:
            add(DUPLICATE)
        else:
            seen.add(index)
            order.append(index)

    missing = [index for index in range(count) if index not in seen]
    add(MISSING, len(missing))
    order.extend(missing)

    return ParsedAnswer(order=order, answer=answer, reasoning=reasoning, repairs=repairs)


def names_every_passage(text: str, count: int) -> bool:
    """Return True when the answer part of a model output names each of `count` passages as ``[i]``.

    Parsing keeps the first mention of each identifier and drops later ones, so
    from this point on more text cannot change the ranking, unless it contains a
    further ``</think>``, after which only the text that follows it is read.
    Only bracketed identifiers count, because a bare ``1`` may be the start of ``10``.

    >>> names_every_passage("[2] > [1] > [3]", 3)
    True
    >>> names_every_passage("[2] > [1] > [1", 3)
    False
    >>> names_every_passage("<think>[1] [2] [3] all matter", 3)
    False
    """
    _, answer, closed = split_reasoning(text)
    if not closed or not answer:
        return False
    named = {int(match) for match in _BRACKETED_ID.findall(answer)}
    return named.issuperset(range(1, count + 1))
