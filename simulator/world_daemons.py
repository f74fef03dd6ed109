"""World wiring for phones with several push daemons (``daemons:`` in a scenario).

An OEM's push service is built from the same parts as FCM (:func:`build_fcm_lab`
under its own name: its own token registry, store and device gateway), and the app
server gets a sender for it, so each app's messages go through the provider its
daemon connects to. Only providers some device uses are built, so a scenario
without ``daemons:`` runs exactly as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from app_server.senders import FcmSender, OAuthTokenSource
from devices.daemon import AdaptiveHeartbeat, HeartbeatPolicy
from devices.daemons import DaemonPlan, DaemonPort, DaemonSet
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.gateway import MemoryGateway
from simulator.core.http import MemoryTransport
from simulator.scenario import DeviceSpec, HeartbeatSpec, Scenario
from simulator.scenario_daemons import DaemonHeartbeat, daemon_set, providers_used

if TYPE_CHECKING:
    from devices.device import Device

SENDER_FOR = {"fcm": "android"}
"""The app server's sender for a provider's tokens (another provider: its own name)."""


def sender_for(provider: str) -> str:
    return SENDER_FOR.get(provider, provider)


def add_daemon_providers(world: World, account: dict[str, str], project: str) -> None:
    """Build every provider a daemon connects to that the world does not have yet."""
    for name in sorted(providers_used(world.scenario) - set(world.providers.backends)):
        rng = world.rng
        lab = build_fcm_lab(project_id=project, clock=world.loop.time,
                            wall_clock=world.wall_clock, trace=world.trace,
                            token_rng=rng.stream(f"{name}-tokens"),
                            core_rng=rng.stream(f"{name}-core"), name=name)
        core = lab.core
        core.oauth.trust(account)
        MemoryGateway(world.network, f"{name}-gateway", core.backend)
        world.providers.backends[name] = core.backend
        world.providers.cores[name] = core
        transport = MemoryTransport(core.handle, latency=0.02)
        sender = FcmSender(transport, OAuthTokenSource(account, transport, world.wall_clock),
                           rng.stream(f"app-server-{name}"),
                           api=world.scenario.app_server.fcm_api)
        sender.provider = name  # type: ignore[misc]  # the trace names the provider
        world.app_server.senders[sender_for(name)] = sender


def install_daemons(world: World, spec: DeviceSpec, device: Device) -> None:
    """Give ``device`` the daemons its spec lists (the first is ``device.daemon``)."""
    plan = daemon_set(spec.daemons)
    if plan is None:
        return
    base = spec.heartbeat or world.scenario.heartbeat
    first, *rest = plan.run
    if first.heartbeat is not None:
        device.daemon.heartbeat = _policy(base, first.heartbeat)
    apps = () if plan.shared else tuple(first.apps)
    device.daemons = DaemonSet(device.daemon, DaemonPlan(first.provider, apps,
                                                         sender=sender_for(first.provider)))
    if plan.shared:
        return  # one channel for every app
    for daemon in rest:
        port = DaemonPort(device, DaemonPlan(
            daemon.provider, tuple(daemon.apps),
            _policy(base, daemon.heartbeat or DaemonHeartbeat()), sender_for(daemon.provider)),
            world.rng.stream(f"device:{device.device_id}:{daemon.provider}"))
        device.daemons.add(port)


class World(Protocol):
    """What this wiring reads of :class:`simulator.world.World` (named, not imported:
    the world imports this module)."""

    scenario: Scenario
    rng: Any
    loop: Any
    wall_clock: Any
    trace: Any
    network: Any
    providers: Any
    app_server: Any


def heartbeat_policy(spec: HeartbeatSpec) -> HeartbeatPolicy:
    """The daemon's heartbeat policy for a scenario's ``heartbeat:`` block."""
    cls = AdaptiveHeartbeat if spec.adaptive else HeartbeatPolicy
    return cls(cellular_s=spec.cellular, wifi_s=spec.wifi, ack_timeout_s=spec.ack_timeout)


def _policy(base: HeartbeatSpec, override: DaemonHeartbeat) -> HeartbeatPolicy:
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return heartbeat_policy(base.model_copy(update=changes))


def uses_daemons(scenario: Scenario) -> bool:
    return any(spec.daemons is not None for spec in scenario.devices)
