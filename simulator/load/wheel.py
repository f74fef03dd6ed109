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
import math
from typing import Protocol


class WheelEntry(Protocol):
    def wheel_fire(self, now: float) -> None: ...


class TimerWheel:
    """Lists of entries by tick, fired by one loop timer (see the module docstring)."""

    __slots__ = ("loop", "tick_s", "slots", "_handle", "_done", "pending", "fired")

    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float = 0.1) -> None:
        self.loop = loop
        self.tick_s = tick_s
        self.slots: dict[int, list[WheelEntry]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._done = math.floor(loop.time() / tick_s)  # every tick up to this one has run
        self.pending = 0  # entries waiting (stale ones included)
        self.fired = 0

    def add(self, entry: WheelEntry, when: float) -> None:
        """Call ``entry.wheel_fire`` at the first tick at or after ``when``."""
        tick = max(math.ceil(when / self.tick_s), self._done + 1)
        slot = self.slots.get(tick)
        if slot is None:
            self.slots[tick] = [entry]
        else:
            slot.append(entry)
        self.pending += 1
        if self._handle is None:
            self._handle = self.loop.call_at(tick * self.tick_s, self._run)

    def _run(self) -> None:
        self._handle = None
        now = self.loop.time()
        upto = math.floor(now / self.tick_s + 1e-9)
        slots = self.slots
        for tick in range(self._done + 1, upto + 1):
            entries = slots.pop(tick, None)
            if entries:
                self.pending -= len(entries)
                self.fired += len(entries)
                for entry in entries:
                    entry.wheel_fire(now)
        self._done = max(self._done, upto)
        if slots:  # tick on while anything waits: ten wake-ups a second at 0.1 s
            self._handle = self.loop.call_at((self._done + 1) * self.tick_s, self._run)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.slots.clear()
        self.pending = 0
