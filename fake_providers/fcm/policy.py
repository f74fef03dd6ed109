"""FCM's store-and-forward rules as a :class:`~fake_providers.store.StorePolicy`.

- Messages live at most 28 days (the TTL default and maximum).
- Collapsible messages: the newest per collapse key replaces older ones; at most
  ``max_collapse_keys`` (4) keys are held at once. FCM says there is "no
  determining factor on which keys are kept"; PushLab evicts the key whose
  message is oldest, so runs stay reproducible.
- Non-collapsible messages: up to ``max_pending`` (100) wait per app instance.
  The one that would exceed the limit makes the store discard everything held
  for that app instance; the app is told on the next connection with a
  ``deleted_messages`` :class:`~simulator.core.devicelink.Notice` (the SDK's
  ``onDeletedMessages()``). The overflowing message itself is kept and starts the
  new queue (PushLab's choice; FCM does not say).
- TTL-0 messages are exempt from the counting, as FCM documents.
- ``normal`` priority waits while an Android device dozes; ``high`` goes through.

Counting scope: Google speaks of limits "per device" (``docs/sources.md#fcm``); PushLab counts per
app instance (registration token) by default so that one app cannot evict
another's messages, and ``scope="device"`` switches to per device.
"""

from __future__ import annotations

from typing import Literal

from fake_providers.store import BasePolicy, DeviceQueue, DeviceState, Envelope
from simulator.core.devicelink import Notice
from simulator.core.trace import EventKind

HIGH = 10
NORMAL = 5
MAX_AGE_S = 28 * 86400.0


class FcmStorePolicy(BasePolicy):
    """Collapse keys, the 100-message limit with its deleted-messages notice, Doze."""

    hold_rule = "doze"  # the trace's ``rule`` event names what :meth:`hold` keeps back

    def __init__(self, *, max_collapse_keys: int = 4, max_pending: int = 100,
                 scope: Literal["token", "device"] = "token",
                 max_age: float = MAX_AGE_S) -> None:
        self.max_age = max_age
        self.max_collapse_keys = max_collapse_keys
        self.max_pending = max_pending
        self.scope = scope
        # device id -> {token: app id} owed a deleted-messages notice
        self.deleted_owed: dict[str, dict[str, str]] = {}
        self.overflows = 0

    def _same_scope(self, a: Envelope, b: Envelope) -> bool:
        return self.scope == "device" or a.token == b.token

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        evicted: list[tuple[Envelope, str]] = []
        # what _same_scope selects, without a method call per queued message (and read
        # straight from the queue's dict, oldest first, instead of a copy of it)
        if self.scope == "device":
            mine = list(queue.items.values())
        else:
            token = env.token
            mine = [e for e in queue.items.values() if e.token == token]
        if env.collapse_key is not None:
            keyed = [e for e in mine if e.collapse_key is not None]
            for e in keyed:
                if e.collapse_key == env.collapse_key:
                    evicted.append((e, EventKind.COLLAPSED))
            keys: list[str] = []
            for e in keyed:  # oldest first: the queue keeps arrival order
                if e.collapse_key != env.collapse_key and e.collapse_key not in keys:
                    keys.append(e.collapse_key)
            while len(keys) >= self.max_collapse_keys:
                victim = keys.pop(0)
                evicted.extend((e, EventKind.DROPPED) for e in keyed
                               if e.collapse_key == victim)
            return evicted
        if env.now_or_never:
            return evicted
        pending = sum(1 for e in mine if e.collapse_key is None and not e.now_or_never)
        if pending >= self.max_pending:
            self.overflows += 1
            evicted.extend((e, EventKind.DROPPED) for e in mine)
            owed = self.deleted_owed.setdefault(env.device_id, {})
            for e in mine:
                owed[e.token] = e.app_id
            owed[env.token] = env.app_id
        return evicted

    def hold(self, env: Envelope, device: DeviceState, now: float) -> bool:
        return device.dozing and env.priority < HIGH

    def take_notices(self, device_id: str) -> list[Notice]:
        """Notices owed to a device that has just connected (read once)."""
        owed = self.deleted_owed.pop(device_id, None)
        if not owed:
            return []
        return [Notice(app_id, token, "deleted_messages") for token, app_id in owed.items()]

    def forget(self, token: str) -> None:
        """An uninstalled app instance is owed nothing."""
        for owed in self.deleted_owed.values():
            owed.pop(token, None)

    def reset(self) -> None:
        self.deleted_owed.clear()
        self.overflows = 0
