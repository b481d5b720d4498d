"""Sliding windows over the head of a ranking, drawn as one line per window."""

import pytest

from dear_ir.listwise.windows import sliding_windows


def draw(count, **options):
    """Draw each window as a line over the candidates: '#' inside the window, '.' outside."""
    return [
        "".join("#" if start <= rank < end else "." for rank in range(count))
        for start, end in sliding_windows(count, **options)
    ]


def test_windows_fewer_candidates_than_window():
    assert sliding_windows(7) == [(0, 7)]
    assert draw(7) == ["#######"]


def test_windows_partial_last_window():
    assert sliding_windows(25) == [(5, 25), (0, 15)]
    assert draw(25) == [
        ".....####################",
        "###############..........",
    ]


def test_windows_reference_top30():
    assert sliding_windows(30) == [(10, 30), (0, 20)]
    assert draw(30) == [
        "..........####################",
        "####################..........",
    ]


def test_windows_exact_window():
    assert sliding_windows(20) == [(0, 20)]


def test_windows_rank_end_limits_head():
    assert sliding_windows(100, rank_end=30) == [(10, 30), (0, 20)]
    assert sliding_windows(12, window=4, step=2, rank_end=8) == [(4, 8), (2, 6), (0, 4)]
    assert draw(12, window=4, step=2, rank_end=8) == [
        "....####....",
        "..####......",
        "####........",
    ]


def test_windows_rank_end_above_count():
    assert sliding_windows(7, rank_end=100) == [(0, 7)]


def test_windows_top100_chain_reaches_rank1():
    windows = sliding_windows(100)
    assert windows[0] == (80, 100)
    assert windows[-1] == (0, 20)
    assert len(windows) == 9

    # A passage moved to the top of a window must lie inside the next window.
    for (start, _), (next_start, next_end) in zip(windows, windows[1:]):
        assert next_start <= start < next_end


def test_windows_step_equals_window():
    assert sliding_windows(10, window=5, step=5) == [(5, 10), (0, 5)]


def test_windows_too_few_candidates():
    assert sliding_windows(0) == []
    assert sliding_windows(1) == []
    assert sliding_windows(5, rank_end=1) == []
    assert sliding_windows(2) == [(0, 2)]


@pytest.mark.parametrize("count", range(0, 61))
@pytest.mark.parametrize("window, step", [(20, 10), (20, 20), (5, 3), (4, 1)])
def test_windows_cover_head(count, window, step):
    windows = sliding_windows(count, window=window, step=step)
    covered = set()
    for start, end in windows:
        assert 0 <= start < end <= count
        assert end - start <= window
        covered.update(range(start, end))
    assert covered == (set(range(count)) if count >= 2 else set())
    if windows:
        assert windows[0][1] == count
        assert windows[-1][0] == 0


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(window=1), "window must be at least 2"),
        (dict(step=0), "step must be between 1"),
        (dict(window=10, step=11), "step must be between 1"),
        (dict(rank_end=-1), "rank_end must not be negative"),
    ],
)
def test_windows_invalid_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        sliding_windows(30, **options)
