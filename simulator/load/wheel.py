"""One coarse timer wheel per worker instead of an event-loop timer per phone.

With 100,000 phones in a few processes, an ``asyncio.TimerHandle`` per phone for
its heartbeat, another for its MQTT keepalive and a third for each ack watchdog
are most of what the event loop's heap holds, and every re-arm is a heap push.
Heartbeats are minutes apart and nothing a phone does needs sub-tick precision,
so the wheel keeps a list per tick (``tick_s``, 0.1 s in scale runs) and one
loop timer for the whole worker. An entry is any object with ``wheel_fire(now)``:
it is called once its tick is reached and decides itself whether it is still
due (stale entries, left behind by an earlier re-arm, simply do nothing).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from typing import Protocol


class WheelEntry(Protocol):
    def wheel_fire(self, now: float) -> None: ...


class TimerWheel:
    """Lists of entries by tick, fired by one loop timer (see the module docstring)."""

    __slots__ = ("loop", "tick_s", "slots", "_ticks", "_handle", "_handle_tick", "_done",
                 "pending", "fired")

    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float = 0.1) -> None:
        self.loop = loop
        self.tick_s = tick_s
        self.slots: dict[int, list[WheelEntry]] = {}
        self._ticks: list[int] = []  # a heap of the ticks that have a slot
        self._handle: asyncio.TimerHandle | None = None
        self._handle_tick = math.inf
        self._done = math.floor(loop.time() / tick_s)  # every tick up to this one has run
        self.pending = 0  # entries waiting (stale ones included)
        self.fired = 0

    def add(self, entry: WheelEntry, when: float) -> None:
        """Call ``entry.wheel_fire`` at the first tick at or after ``when``."""
        tick = max(math.ceil(when / self.tick_s), self._done + 1)
        slot = self.slots.get(tick)
        if slot is None:
            self.slots[tick] = [entry]
            heapq.heappush(self._ticks, tick)
        else:
            slot.append(entry)
        self.pending += 1
        self._schedule(tick)

    def _schedule(self, tick: int) -> None:
        """One loop timer, at the earliest tick anything waits for."""
        if self._handle is not None:
            if self._handle_tick <= tick:
                return
            self._handle.cancel()
        self._handle_tick = tick
        self._handle = self.loop.call_at(tick * self.tick_s, self._run)

    def _run(self) -> None:
        self._handle = None
        self._handle_tick = math.inf
        upto = math.floor(self.loop.time() / self.tick_s + 1e-9)
        ticks, slots = self._ticks, self.slots
        while ticks and ticks[0] <= upto:
            tick = heapq.heappop(ticks)
            entries = slots.pop(tick)
            self._done = max(self._done, tick)  # what fires now re-arms after this tick
            self.pending -= len(entries)
            self.fired += len(entries)
            now = self.loop.time()
            for entry in entries:
                entry.wheel_fire(now)  # may add entries, at ticks after _done
        self._done = max(self._done, upto)
        if ticks:
            self._schedule(ticks[0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.slots.clear()
        self._ticks.clear()
        self.pending = 0
