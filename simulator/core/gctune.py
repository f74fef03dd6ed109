"""Garbage-collector settings for long runs that build much and free little.

CPython's collector walks every tracked container of a generation; a full
collection at 100,000 phones walks millions of long-lived objects (devices,
sessions, deliveries) to find almost no cycles. A lab process moves what it built
to the permanent generation and collects its young objects less often. Objects
are still freed by reference counting; only cycles wait longer.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

LOAD_THRESHOLD = (20_000, 50, 50)  # load processes: short pauses during a latency phase
RUN_THRESHOLD = (100_000, 50, 1_000)  # a sim run: throughput only, no latency to keep


def tune_gc(threshold: tuple[int, int, int] = LOAD_THRESHOLD) -> None:
    """Freeze what exists now and collect the young generation less often, for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*threshold)


@contextlib.contextmanager
def quiet_gc(threshold: tuple[int, int, int] = RUN_THRESHOLD) -> Iterator[None]:
    """``tune_gc`` for the length of a block, then the caller's settings back.

    A sim run of a city spent a quarter of its CPU in full collections (5,000
    phones, 24 h: 36 of them, 5-7 s of 26-36 s); with this, none.
    """
    before = gc.get_threshold()
    tune_gc(threshold)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
