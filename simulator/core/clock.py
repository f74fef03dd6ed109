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
import collections
import contextvars
import heapq
import itertools
import selectors
from collections.abc import Callable, Coroutine
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


class _Timer(asyncio.TimerHandle):
    """A TimerHandle built without the debug bookkeeping (this loop never debugs timers)."""

    __slots__ = ()

    def __init__(self, when, callback, args, loop, context) -> None:  # noqa: ANN001
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._context = context if context is not None else contextvars.copy_context()
        self._when = when
        self._scheduled = True


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on simulated time; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._now = 0.0
        self._seq = itertools.count()
        super().__init__(selector=_VirtualSelector(self))
        # asyncio fires timers with when < now + resolution; keep it tiny but > 0.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    # The heap holds (when, seq, handle) tuples rather than handles: tuples compare
    # in C, handles through a Python __lt__, and a long run compares millions of
    # times. ``seq`` breaks ties in scheduling order (FIFO, as SimPy does).

    def _advance_to_next_timer(self) -> None:
        scheduled = self._scheduled
        while scheduled and scheduled[0][2]._cancelled:
            heapq.heappop(scheduled)[2]._scheduled = False
            self._timer_cancelled_count -= 1
        if scheduled and scheduled[0][0] > self._now:
            self._now = scheduled[0][0]

    def call_at(self, when, callback, *args, context=None):  # noqa: ANN001, ANN201
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _Timer(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, next(self._seq), timer))
        return timer

    def _run_once(self) -> None:
        """One step of the loop, without the selector: jump, collect due timers, run.

        Same order as asyncio's own step (ready callbacks first, then timers due
        now in (when, scheduling order)), minus the I/O poll that virtual time
        never needs. Long runs spend most of their time here.
        """
        scheduled = self._scheduled
        ready = self._ready
        if self._timer_cancelled_count > 100 and self._timer_cancelled_count * 2 > len(scheduled):
            live = []
            for entry in scheduled:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False
                else:
                    live.append(entry)
            heapq.heapify(live)
            self._scheduled = scheduled = live
            self._timer_cancelled_count = 0
        if not ready and not self._stopping:
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)[2]._scheduled = False
            if not scheduled:
                raise SimulationStalled(
                    "no runnable callback and no pending timer: every task waits forever")
            when = scheduled[0][0]
            if when > self._now:
                self._now = when
        now = self._now
        pop = heapq.heappop
        while scheduled and scheduled[0][0] <= now:
            handle = pop(scheduled)[2]
            handle._scheduled = False
            if handle._cancelled:
                self._timer_cancelled_count -= 1
            else:
                ready.append(handle)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

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
        close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on ``loop``, let it finish, detach and close the loop."""
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


class Watchdogs:
    """Many timeouts of the same few lengths, on one timer per length.

    Timeouts such as a heartbeat's ack deadline are armed for every cycle and
    almost never fire. Armed with the same delay, their deadlines arrive in
    order, so a FIFO per delay replaces one heap timer per arm. A callback runs
    at its deadline or at most ``granularity`` seconds after it: a model that
    needs exact instants uses ``loop.call_at`` instead.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, granularity: float = 1.0) -> None:
        self._loop = loop
        self.granularity = granularity
        self._lines: dict[float, collections.deque] = {}
        self._armed: dict[float, float] = {}  # delay -> when its timer fires

    def after(self, delay: float, callback: Callable[..., object], *args: object) -> None:
        line = self._lines.get(delay)
        if line is None:
            line = self._lines[delay] = collections.deque()
        deadline = self._loop.time() + delay
        line.append((deadline, callback, args))
        if delay not in self._armed:
            self._armed[delay] = deadline
            self._loop.call_at(deadline, self._sweep, delay)

    def _sweep(self, delay: float) -> None:
        now = self._loop.time()
        line = self._lines[delay]
        while line and line[0][0] <= now:
            _, callback, args = line.popleft()
            callback(*args)
        if line:
            when = max(line[0][0], now + self.granularity)
            self._armed[delay] = when
            self._loop.call_at(when, self._sweep, delay)
        else:
            del self._armed[delay]
