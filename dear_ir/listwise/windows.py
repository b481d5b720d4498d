"""Sliding-window arithmetic for listwise reranking, back to front.

The windows cover the head of a ranking, ``[0, min(rank_end, count))``. The
first window ends at the last passage of the head, and each next window ends
`step` passages earlier. Because consecutive windows overlap by
``window - step`` passages, a passage that a window moves to its top is also in
the next window, so one pass can carry the last passage of the head to rank 1.
The last window starts at 0 and may be shorter than `window`.
"""

from __future__ import annotations


def sliding_windows(
    count: int,
    window: int = 20,
    step: int = 10,
    rank_end: int | None = None,
) -> list[tuple[int, int]]:
    """Return the (start, end) windows, half-open and 0-based, in the order to rerank them.

    `count` is the number of candidates, and `rank_end` caps the head that is
    reranked (None reranks all of them). A head of fewer than two passages has
    no order to change and gets no window.

    >>> sliding_windows(7)
    [(0, 7)]
    >>> sliding_windows(25)
    [(5, 25), (0, 15)]
    >>> sliding_windows(30)
    [(10, 30), (0, 20)]
    >>> sliding_windows(100, rank_end=40)
    [(20, 40), (10, 30), (0, 20)]
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 passages, got {window}")
    if not 1 <= step <= window:
        # A step longer than the window would leave passages between two windows unranked.
        raise ValueError(f"step must be between 1 and the window ({window}) passages, got {step}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if rank_end is not None and rank_end < 0:
        raise ValueError(f"rank_end must not be negative, got {rank_end}")

    head = count if rank_end is None else min(count, rank_end)
    if head < 2:
        return []

    windows = []
    end = head
    start = max(end - window, 0)
    windows.append((start, end))
    while start > 0:
        # start > 0 means end > window >= step, so end stays positive.
        end -= step
        start = max(end - window, 0)
        windows.append((start, end))
    return windows
