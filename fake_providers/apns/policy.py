"""APNs's store-and-forward rules as a :class:`~fake_providers.store.StorePolicy`.

What Apple documents (``docs/sources.md#apns``, store and forward):

* While a device is offline APNs keeps **one notification per (device token,
  topic)**: each new one replaces the one kept ("coalescing"). Here the newest
  always wins (Apple: "in most cases").
* A notification is kept at most **30 days** (less when ``apns-expiration`` says so).
* Priority **10** goes at once. Priorities **5** and **1** "might get grouped and
  delivered in bursts"; 1 "puts the device's power first and does not wake it".

Apple gives no numbers for the bursts, so PushLab's rule (configurable) is:

* Priority 5 waits for the next **burst boundary**: multiples of
  ``burst_interval`` seconds (default 60) on the provider's clock; at a boundary
  everything waiting goes out together.
* Priority 1 waits until the **device is awake anyway**: it has sent something
  (heartbeat, ack, reconnect) since the notification was accepted, within the last
  ``awake_window`` seconds, or a priority-10 push has just woken it. It is
  checked at each burst boundary and whenever the device's queue is flushed.
* Both go out at once, riding along, whenever the device is awake in that sense.

The release timers live in the :class:`~fake_providers.store.StoreAndForward`
(it asks :meth:`release_at` and the backend flushes), so this class stays a pure
function of its inputs and the time it is told.
"""

from __future__ import annotations

import math

from fake_providers.store import BasePolicy, DeviceQueue, DeviceState, Envelope
from simulator.core.trace import EventKind

THIRTY_DAYS = 30 * 86400.0


def slot_of(env: Envelope) -> tuple[str, str]:
    """The store slot: (device token, topic). The topic includes its push-type suffix."""
    return env.token, env.extra.get("topic", env.app_id)


class ApnsStorePolicy(BasePolicy):
    """One slot per (token, topic), newest wins; power-aware holding of priority 5 and 1."""

    def __init__(self, *, burst_interval: float = 60.0, awake_window: float = 10.0,
                 max_age: float = THIRTY_DAYS) -> None:
        self.burst_interval = burst_interval
        self.awake_window = awake_window
        self.max_age = max_age
        self._woken: dict[str, float] = {}  # device -> when a priority-10 push last woke it

    # StorePolicy ---------------------------------------------------------------
    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        slot = slot_of(env)
        return [(old, EventKind.COLLAPSED) for old in queue if slot_of(old) == slot]

    def hold(self, env: Envelope, device: DeviceState, now: float) -> bool:
        if env.priority >= 10:
            return False
        if self._awake(env, device, now):
            return False
        return not (env.priority >= 5 and now >= self.boundary_after(env.accepted_at))

    def woke(self, env: Envelope, now: float) -> bool:
        """A priority-10 push just went to the device: its radio is up."""
        if env.priority < 10:
            return False
        self._woken[env.device_id] = now
        return True

    def release_at(self, now: float) -> float:
        return self.boundary_after(now)

    def boundary_after(self, t: float) -> float:
        """The first burst boundary strictly after ``t``."""
        step = self.burst_interval
        return (math.floor(t / step) + 1) * step

    def _awake(self, env: Envelope, device: DeviceState, now: float) -> bool:
        window = self.awake_window
        if device.last_activity > env.accepted_at and now - device.last_activity <= window:
            return True
        woke = self._woken.get(env.device_id)
        return woke is not None and woke >= env.accepted_at and now - woke <= window
