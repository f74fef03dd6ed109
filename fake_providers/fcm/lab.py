"""A stand-alone FCM look-alike: registry, store, backend and core, wired together.

The world builder wires FCM into a whole simulated world; this module builds
just the provider, for ``pushlab serve fcm``, the benchmark and tests.
"""

from __future__ import annotations

import asyncio
import random
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from fake_providers.activity import ActivityLog
from fake_providers.backend import PushBackend
from fake_providers.faults import FaultPlan
from fake_providers.fcm.core import FcmConfig, FcmCore
from fake_providers.fcm.policy import FcmStorePolicy
from fake_providers.registry import TokenRegistry, fcm_token
from fake_providers.store import StoreAndForward
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace

_last_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None


def loop_clock() -> float:
    """The running loop's time (virtual or real), 0.0 outside a loop."""
    # asyncio.get_running_loop() makes a getpid() system call on Python 3.11 and the
    # core reads the clock on every send, so the last running loop is remembered: while
    # it runs in this thread (``_thread_id``, set by run_forever) it is the running loop.
    global _last_loop
    loop = _last_loop() if _last_loop is not None else None
    if loop is not None and getattr(loop, "_thread_id", None) == threading.get_ident():
        return loop.time()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0.0
    _last_loop = weakref.ref(loop)
    return loop.time()


@dataclass
class FcmLab:
    """One FCM project's provider side."""

    backend: PushBackend
    core: FcmCore
    policy: FcmStorePolicy
    trace: Trace
    extra: dict = field(default_factory=dict)

    @property
    def faults(self) -> FaultPlan:
        return self.core.faults

    @property
    def activity(self) -> ActivityLog:
        return self.core.activity

    def issue(self, device_id: str, app_id: str) -> str:
        """Register an install and return its registration token (as Play services would)."""
        return self.backend.registry.issue(device_id, app_id, "production",
                                           self.backend.clock()).token

    def uninstall(self, device_id: str, app_id: str) -> None:
        """Forget the install: its token, queued messages, owed notices and topics."""
        self.backend.uninstall(device_id, app_id)


def build_fcm_lab(seed: int = 0, *, project_id: str = "pushlab-demo",
                  clock: Callable[[], float] = loop_clock,
                  wall_clock: Callable[[], float] | None = None,
                  config: FcmConfig | None = None,
                  policy: FcmStorePolicy | None = None,
                  trace: Trace | None = None, faults: FaultPlan | None = None,
                  token_rng: random.Random | None = None,
                  core_rng: random.Random | None = None, name: str = "fcm") -> FcmLab:
    """The one way to assemble FCM: everything a project needs on the provider side.
    Random streams follow ``seed`` unless given (a world passes its own named streams).
    ``name`` is the provider's in the trace: an OEM's FCM-like push service is another."""
    rs = RandomSource(seed)
    trace = trace or Trace(clock)
    policy = policy or FcmStorePolicy()
    registry = TokenRegistry(token_rng or rs.stream("fcm.tokens"), fcm_token)
    backend = PushBackend(name, registry, StoreAndForward(policy), clock, trace)
    core = FcmCore(backend, core_rng or rs.stream("fcm.core"), project_id=project_id,
                   wall_clock=wall_clock, config=config, faults=faults)
    return FcmLab(backend, core, policy, trace)
