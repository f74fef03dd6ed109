"""Virtual time for asyncio.

`VirtualTimeLoop` is an ordinary asyncio event loop whose clock does not follow
the wall: when nothing is runnable it jumps straight to the next timer. Model code
that reads time only from the running loop (``loop.time()``, ``asyncio.sleep``,
``asyncio.timeout``) therefore runs unchanged in simulated and in real time.

Contract (as in trio's MockClock, with ``autojump_threshold=0``):

* ``loop.time()`` starts at 0.0 and never decreases.
* Time advances only while the loop would otherwise block in ``select``; it
  jumps to exactly the ``when`` of the earliest scheduled timer.
* Callbacks due at the same instant run in the order they were scheduled
  (asyncio's heap plus a monotonic tie-break), so a run is a pure function of
  its inputs and seed.
* There is no real I/O: if nothing is runnable and no timer is pending, the
  simulation is over and ``select`` raises :class:`SimulationStalled` instead of
  hanging forever.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SimulationStalled(RuntimeError):
    """Raised when every task waits on something that no timer will ever wake."""


class _VirtualSelector(selectors.BaseSelector):
    """Selector that never waits: it advances the loop's virtual clock instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fileno(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list:
        if timeout is None:
            raise SimulationStalled(
                "no runnable callback and no pending timer: every task waits forever"
            )
        if timeout > 0:
            self._loop._advance_to_next_timer()
        return []

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        return self._map

    def close(self) -> None:
        self._map.clear()


def _fileno(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()


class _OrderedTimerHandle(asyncio.TimerHandle):
    """A timer that breaks ties on ``when`` by scheduling order (determinism)."""

    __slots__ = ("_seq",)
    _counter = itertools.count()

    def __init__(self, when, callback, args, loop, context=None) -> None:  # noqa: ANN001
        super().__init__(when, callback, args, loop, context=context)
        self._seq = next(self._counter)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, asyncio.TimerHandle):
            if self._when == other._when:
                return self._seq < getattr(other, "_seq", 0)
            return self._when < other._when
        return NotImplemented

    def __le__(self, other: object) -> bool:
        return self == other or self < other  # type: ignore[operator]


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on simulated time; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_VirtualSelector(self))
        # asyncio fires timers with when < now + resolution; keep it tiny but > 0.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def _advance_to_next_timer(self) -> None:
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            heapq.heappop(scheduled)
            self._timer_cancelled_count -= 1
        if scheduled and scheduled[0]._when > self._now:
            self._now = scheduled[0]._when

    def call_at(self, when, callback, *args, context=None):  # noqa: ANN001, ANN201
        self._check_closed()
        timer = _OrderedTimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def run_in_executor(self, executor, func, *args):  # noqa: ANN001, ANN201
        raise RuntimeError(
            "threads cannot take part in virtual time; keep blocking work out of sim mode"
        )


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
