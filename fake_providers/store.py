"""Store-and-forward: what a provider keeps for a device until the device acks it.

A message stays in the store from acceptance until the device acknowledges it,
whether or not it was already forwarded: a push forwarded into a connection that
a NAT silently killed is never acked, so it is sent again after the reconnect.
Each service decides what it keeps with a :class:`StorePolicy`; the store holds
the queues and the release timers that look again at what the policy held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulator.core.devicelink import Notice

CallLater = Callable[[float, Callable[[], None]], object]


@dataclass(slots=True)
class Envelope:
    """One accepted notification on its way to one device."""

    msg_id: str
    token: str
    device_id: str
    app_id: str
    payload: dict[str, Any]
    accepted_at: float
    priority: int = 10
    collapse_key: str | None = None
    expires_at: float | None = None  # None: the service's maximum applies
    now_or_never: bool = False
    size: int = 0
    forwarded_at: float | None = None
    attempts: int = 0
    conn: int = 0  # the connection number it was last forwarded on (0: none yet)
    extra: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class StorePolicy(Protocol):
    """A service's rules for what it keeps and when it lets it go; every hook is declared."""

    max_age: float

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        """Make room for ``env``; return the messages evicted and why (a trace kind)."""
        ...

    def hold(self, env: Envelope, device: DeviceState, now: float) -> bool:
        """Whether ``env`` waits although the device is connected (power-aware, Doze)."""
        ...

    def take_notices(self, device_id: str) -> list[Notice]:
        """Notices owed to a device that has just connected (read once)."""
        ...

    def forget(self, token: str) -> None:
        """An app instance was uninstalled: it is owed nothing any more."""
        ...

    def woke(self, env: Envelope, now: float) -> bool:
        """``env`` was just forwarded on acceptance; True: it woke the device, so what
        is held for it rides along now."""
        ...

    def release_at(self, now: float) -> float | None:
        """When to look again at what :meth:`hold` kept back from a connected device;
        None: only at its next flush (a status change, a reconnect)."""
        ...


class BasePolicy:
    """The hooks' defaults: nothing owed, nothing to forget, no wake-ups, no timers."""

    max_age = 30 * 86400.0

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        return []

    def hold(self, env: Envelope, device: DeviceState, now: float) -> bool:
        return False

    def take_notices(self, device_id: str) -> list[Notice]:
        return []

    def forget(self, token: str) -> None:
        return None

    def woke(self, env: Envelope, now: float) -> bool:
        return False

    def release_at(self, now: float) -> float | None:
        return None


@dataclass(slots=True)
class DeviceState:
    """What the provider knows of a device besides its queue."""

    dozing: bool = False
    last_activity: float = 0.0


class DeviceQueue:
    """The messages held for one device, oldest first."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[str, Envelope] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):  # noqa: ANN204
        return iter(list(self.items.values()))

    def add(self, env: Envelope) -> None:
        self.items[env.msg_id] = env

    def remove(self, msg_id: str) -> Envelope | None:
        return self.items.pop(msg_id, None)


class KeepAllPolicy(BasePolicy):
    """Keeps everything until its expiry (the walking skeleton's rule)."""


class StoreAndForward:
    """Per-device queues under one policy; expiry is checked whenever a queue is read.

    It also keeps the release timers: which devices have something held back
    (:meth:`mark_held`) and when to look at them again (:meth:`arm`). Timers run on
    ``call_later`` (a loop's, virtual or real); without one, the running loop's is
    used, and with no loop at all held messages leave on the next flush.
    """

    def __init__(self, policy: StorePolicy, call_later: CallLater | None = None) -> None:
        self.policy = policy
        self.queues: dict[str, DeviceQueue] = {}
        self.call_later = call_later
        self.holding: set[str] = set()  # devices with something held back
        self._timers: dict[float, set[str]] = {}  # release time -> devices

    def queue(self, device_id: str) -> DeviceQueue:
        q = self.queues.get(device_id)
        if q is None:
            q = self.queues[device_id] = DeviceQueue()
        return q

    def put(self, env: Envelope, now: float) -> list[tuple[Envelope, str]]:
        if env.expires_at is None or env.expires_at > now + self.policy.max_age:
            env.expires_at = now + self.policy.max_age
        q = self.queue(env.device_id)
        evicted = self.policy.admit(q, env)
        for old, _ in evicted:
            q.remove(old.msg_id)
        q.add(env)
        return evicted

    def ack(self, device_id: str, msg_id: str) -> Envelope | None:
        q = self.queues.get(device_id)
        return q.remove(msg_id) if q is not None else None

    def take_expired(self, device_id: str, now: float) -> list[Envelope]:
        q = self.queues.get(device_id)
        if not q:
            return []
        gone = [e for e in q if e.expired(now)]
        for e in gone:
            q.remove(e.msg_id)
        return gone

    def pending(self, device_id: str) -> list[Envelope]:
        q = self.queues.get(device_id)
        return list(q) if q else []

    def drop_token(self, token: str) -> list[Envelope]:
        """Forget every message for a token (its app was uninstalled)."""
        dropped = []
        for q in self.queues.values():
            for e in q:
                if e.token == token:
                    q.remove(e.msg_id)
                    dropped.append(e)
        return dropped

    def total(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # release timers -----------------------------------------------------------
    def mark_held(self, device_id: str) -> None:
        self.holding.add(device_id)

    def unmark_held(self, device_id: str) -> bool:
        """Clear the device's held mark; whether it had one."""
        if device_id in self.holding:
            self.holding.discard(device_id)
            return True
        return False

    def arm(self, device_id: str, now: float, release: Callable[[str], None]) -> None:
        """Call ``release(device_id)`` when the policy next lets held messages go.

        Devices due at the same instant share one timer and are released in order."""
        at = self.policy.release_at(now)
        if at is None:
            return
        waiting = self._timers.get(at)
        if waiting is not None:
            waiting.add(device_id)
            return
        call_later = self.call_later
        if call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:
                return  # no loop (pure unit tests): held ones leave on the next flush
        self._timers[at] = {device_id}
        call_later(max(at - now, 0.0), lambda: self._fire(at, release))

    def _fire(self, at: float, release: Callable[[str], None]) -> None:
        for device_id in sorted(self._timers.pop(at, set())):
            self.holding.discard(device_id)
            release(device_id)
