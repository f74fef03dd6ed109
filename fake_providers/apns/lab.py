"""A stand-alone APNs look-alike: registry, store, backend and one core per environment.

The world builder wires the provider into a whole simulated world; this module
builds just the provider, for ``pushlab serve apns``, the benchmark and tests.
Both environments share one backend (one token registry, one store), one fault
plan and one activity log, so one admin API serves both.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fake_providers.activity import ActivityLog
from fake_providers.apns.core import ApnsConfig, ApnsCore
from fake_providers.apns.keys import TrustedKey
from fake_providers.apns.policy import ApnsStorePolicy
from fake_providers.backend import PushBackend
from fake_providers.faults import FaultPlan
from fake_providers.registry import TokenRegistry, apns_token
from fake_providers.store import CallLater, StoreAndForward, StorePolicy
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace


def loop_clock() -> float:
    """The running loop's time (virtual or real), 0.0 outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0


@dataclass
class ApnsLab:
    backend: PushBackend
    cores: dict[str, ApnsCore]
    faults: FaultPlan
    activity: ActivityLog
    policy: StorePolicy
    trace: Trace
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> ApnsCore:
        return self.cores["production"]

    @property
    def sandbox(self) -> ApnsCore:
        return self.cores["sandbox"]

    def issue(self, device_id: str, app_id: str, environment: str = "production") -> str:
        """Register an install and return its device token (as a device's daemon would)."""
        return self.backend.registry.issue(device_id, app_id, environment,
                                           self.backend.clock()).token

    def uninstall(self, device_id: str, app_id: str) -> None:
        self.backend.uninstall(device_id, app_id)

    def reset(self) -> None:
        """Admin reset: activity, faults and rate counters (tokens and queues stay)."""
        for core in self.cores.values():
            core.reset()


def build_lab(*, seed: int = 0, clock: Callable[[], float] | None = None,
              wall_clock: Callable[[], float] | None = None,
              trusted_keys: dict[str, TrustedKey] | None = None,
              require_auth: bool | None = None, config: ApnsConfig | None = None,
              burst_interval: float = 60.0, policy: StorePolicy | None = None,
              trace: Trace | None = None, faults: FaultPlan | None = None,
              call_later: CallLater | None = None,
              environments: Sequence[str] = ("production", "sandbox"),
              token_rng: random.Random | None = None,
              core_rngs: dict[str, random.Random] | None = None) -> ApnsLab:
    """The one way to assemble APNs: registry, store (with its release timers), backend
    and one core per environment. Random streams follow ``seed`` unless given (a world
    passes its own named streams); ``call_later`` defaults to the running loop's."""
    clock = clock or loop_clock
    rs = RandomSource(seed)
    trace = trace or Trace(clock)
    policy = policy or ApnsStorePolicy(burst_interval=burst_interval)
    registry = TokenRegistry(token_rng or rs.stream("apns.tokens"), apns_token)
    backend = PushBackend("apns", registry, StoreAndForward(policy, call_later), clock, trace)
    config = config or ApnsConfig()
    faults = faults if faults is not None else FaultPlan()
    activity = ActivityLog(config.activity_limit, provider="apns")
    rngs = core_rngs or {}
    cores = {
        env: ApnsCore(backend, rngs.get(env) or rs.stream(f"apns.core.{env}"), env,
                      trusted_keys=trusted_keys, require_auth=require_auth,
                      wall_clock=wall_clock, config=config, faults=faults, activity=activity)
        for env in environments
    }
    return ApnsLab(backend, cores, faults, activity, policy, trace)
