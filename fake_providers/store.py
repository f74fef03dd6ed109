"""Store-and-forward: what a provider keeps for a device until the device acks it.

A message stays in the store from acceptance until the device acknowledges it,
whether or not it was already forwarded: a push forwarded into a connection that
a NAT silently killed is never acked, so it is sent again after the reconnect.
Each service decides what it keeps with a :class:`StorePolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
    extra: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class StorePolicy(Protocol):
    """How a service treats a new message for a device that already has some pending."""

    max_age: float

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        """Make room for ``env``; return the messages evicted and why (a trace kind)."""
        ...

    def hold(self, env: Envelope, device: DeviceState) -> bool:
        """Whether ``env`` waits although the device is connected (power-aware, Doze)."""
        ...


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


class KeepAllPolicy:
    """Keeps everything until its expiry (the walking skeleton's rule)."""

    max_age = 30 * 86400.0

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        return []

    def hold(self, env: Envelope, device: DeviceState) -> bool:
        return False


class StoreAndForward:
    """Per-device queues under one policy; expiry is checked whenever a queue is read."""

    def __init__(self, policy: StorePolicy) -> None:
        self.policy = policy
        self.queues: dict[str, DeviceQueue] = {}

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
