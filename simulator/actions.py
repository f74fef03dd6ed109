"""The timeline's actions, in one registry: name -> typed parameters -> how to apply them.

Every reader of actions uses :data:`ACTIONS`: the scenario's ``TimelineEntry``
has one optional field per entry (and names them in its errors), the world's
:meth:`~simulator.world.World.act` runs an entry's ``apply``, and the dashboard
and the live lab's control API (``pushlab up``) turn a name and a JSON body into
parameters with :meth:`Action.parse` and hand them to ``World.act``. Adding an
action is one entry here.

Per-device actions (``per_device``) name a device or a group in ``device`` and are
applied to each device of it; :func:`device_actions` lists them (what a control
API may offer for one phone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from devices.apps import PushApp
from simulator.core.devicelink import PROVIDER_FOR
from simulator.core.trace import EventKind
from simulator.scenario_types import Duration, InterfaceKind, ProviderName, Strict

if TYPE_CHECKING:
    from devices.device import Device
    from simulator.core.trace import Trace


class World(Protocol):
    """What an action uses of a world (:class:`simulator.world.World` is one)."""

    scenario: Any  # the Scenario it runs (its doze settings)
    providers: Any
    app_server: Any
    trace: Trace
    restart_broker: Callable[[float], Any] | None

    def targets(self, name: str) -> list[Device]: ...

    async def send(self, action: SendAction) -> None: ...

    def fault_tokens(self, action: FaultAction) -> list[str | None]: ...


# ---- parameters ------------------------------------------------------------------------
class SendAction(Strict):
    user: str | None = None
    device: str | None = None
    topic: str | None = None
    app: str | None = None
    title: str = "Hello"
    body: str = ""
    priority: Literal["high", "normal"] = "high"
    ttl: Duration | None = None
    collapse: str | None = None
    background: bool = Field(False, description="a data (silent) message: FCM data-only "
                                                "(not collapsible), APNs content-available")
    mutable_content: bool = Field(False, description="an alert the app's Notification Service "
                                  "Extension may change first (APNs mutable-content: 1)")
    live_activity: Literal["update", "end"] | None = Field(
        None, description="a Live Activity update (APNs push type liveactivity; priority "
                          "high = 10, normal = 5); data is its content-state")
    data: dict[str, str] | None = None
    count: int = Field(1, ge=1)
    every: Duration = 0.0

    @model_validator(mode="after")
    def _one_target(self) -> SendAction:
        targets = [t for t in (self.user, self.device, self.topic) if t is not None]
        if len(targets) != 1:
            raise ValueError("give exactly one of user, device or topic")
        return self


class DeviceAction(Strict):
    device: str
    network: InterfaceKind | None = None
    on: bool = True
    unreported: bool = Field(False, description="change_address: the network renumbers the "
                             "device without the device noticing (e.g. a carrier NAT remap)")


class AppAction(Strict):
    device: str
    app: str


class UserAction(Strict):
    device: str
    user: str | None = None


class OutageAction(Strict):
    """The provider stops answering sends: 503s (``unavailable``), 503 and
    GOAWAY (``shutdown``), or connections cut without a word (``drop``)."""

    provider: ProviderName
    mode: Literal["unavailable", "shutdown", "drop"] = "unavailable"


class RecoverAction(Strict):
    provider: ProviderName


class FaultAction(Strict):
    """A scripted answer from the provider's fault plan (fake_providers/faults.py)."""

    provider: ProviderName
    status: int | None = Field(None, ge=100, le=599)
    reason: str | None = None
    count: int | None = Field(None, ge=1, description="how many requests it answers "
                                                      "(none: until the run ends)")
    retry_after: float | None = Field(None, ge=0)
    delay: Duration = 0.0
    device: str | None = Field(None, description="only this device's tokens (a group: each)")
    app: str | None = None


class SubscribeAction(Strict):
    device: str
    app: str
    topic: str


class BrokerRestartAction(Strict):
    """Restart the MQTT broker (live mode); a note in sim mode."""

    down_for: Duration = 0.0


# ---- the registry ----------------------------------------------------------------------
DeviceApply = Callable[["World", "Device", Any], None]
WorldApply = Callable[["World", Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Action:
    """One timeline action: its parameters' type and what it does to a world."""

    name: str
    params: Any  # a Strict model, or ``str`` (a note's text)
    apply: DeviceApply | WorldApply
    per_device: bool = False  # apply(world, device, params) for each device of params.device
    description: str | None = None  # shown in the scenario schema

    def parse(self, data: Any) -> Any:
        """Parameters from plain data (a JSON body); ValueError with one line if wrong."""
        try:
            return TypeAdapter(self.params).validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or self.name
            raise ValueError(f"{where}: {first['msg']}") from None

    async def run(self, world: World, params: Any) -> None:
        """Carry the action out on ``world`` now."""
        if self.per_device:
            for device in world.targets(params.device):
                self.apply(world, device, params)  # type: ignore[call-arg]
            return
        await self.apply(world, params)  # type: ignore[call-arg,misc]


# per-device actions: what happens to one phone or browser
def _switch_network(world: World, device: Device, p: DeviceAction) -> None:
    device.switch_network(p.network or "wifi")


def _change_address(world: World, device: Device, p: DeviceAction) -> None:
    device.change_address(p.network, notify=not p.unreported)


def _doze(world: World, device: Device, p: DeviceAction) -> None:
    doze = world.scenario.doze
    device.set_doze(p.on, tuple(doze.windows), doze.maintenance)


def _uninstall(world: World, device: Device, p: AppAction) -> None:
    device.uninstall(p.app)  # a browser's daemon unsubscribes the site itself
    # the provider of the daemon that served the app (an OEM's, on a phone with two)
    provider = device.daemons.provider_of(device.daemons.for_app(p.app))
    backend = world.providers.backends.get(provider or PROVIDER_FOR[device.platform])
    if backend is not None:
        backend.uninstall(device.device_id, p.app)


def _login(world: World, device: Device, p: UserAction) -> None:
    device.user = p.user
    world.app_server.login(device.device_id, p.user)
    world.trace.emit(EventKind.LOGIN, device=device.device_id, user=p.user)


def _logout(world: World, device: Device, p: UserAction) -> None:
    device.user = None
    world.app_server.logout(device.device_id)
    world.trace.emit(EventKind.LOGOUT, device=device.device_id)


# world actions: sends, notes and what providers do
async def _send(world: World, p: SendAction) -> None:
    await world.send(p)


async def _note(world: World, text: str) -> None:
    world.trace.emit(EventKind.NOTE, text=text)


async def _subscribe(world: World, p: SubscribeAction) -> None:
    for device in world.targets(p.device):
        await world.app_server.subscribe(device.device_id, p.app, p.topic)


async def _broker_restart(world: World, p: BrokerRestartAction) -> None:
    world.trace.emit(EventKind.BROKER_RESTART, down_for=p.down_for,
                     live=world.restart_broker is not None)
    if world.restart_broker is not None:
        await world.restart_broker(p.down_for)


async def _outage(world: World, p: OutageAction) -> None:
    world.providers.faults[p.provider].set_outage(p.mode)
    world.trace.emit(EventKind.OUTAGE, provider=p.provider, mode=p.mode)


async def _recover(world: World, p: RecoverAction) -> None:
    world.providers.faults[p.provider].set_outage(None)
    world.trace.emit(EventKind.RECOVER, provider=p.provider)


async def _fault(world: World, p: FaultAction) -> None:
    plan = world.providers.faults[p.provider]
    for token in world.fault_tokens(p):
        plan.add(status=p.status, reason=p.reason, token=token, count=p.count,
                 retry_after=p.retry_after, delay=p.delay)
    world.trace.emit(EventKind.FAULT, provider=p.provider, status=p.status, reason=p.reason,
                     device=p.device)


def _device(name: str, params: Any, apply: DeviceApply, description: str | None = None
            ) -> Action:
    return Action(name, params, apply, per_device=True, description=description)


# In the scenario schema's order (the JSON Schema lists TimelineEntry's fields so).
ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("send", SendAction, _send),
    _device("switch_network", DeviceAction, _switch_network),
    _device("partition", DeviceAction, lambda w, d, p: d.set_partitioned(p.on),
            "on: frames to and from the device vanish while its interfaces still look up; "
            "off: the partition heals"),
    _device("nat_drop", DeviceAction, lambda w, d, p: d.expire_nat(),
            "the carrier NAT silently forgets the device's binding now"),
    _device("change_address", DeviceAction, _change_address),
    _device("offline", DeviceAction, lambda w, d, p: d.set_offline(True)),
    _device("online", DeviceAction, lambda w, d, p: d.set_offline(False)),
    _device("airplane", DeviceAction, lambda w, d, p: d.set_airplane(p.on)),
    _device("reboot", DeviceAction, lambda w, d, p: d.reboot()),
    _device("doze", DeviceAction, _doze),
    _device("install", AppAction, lambda w, d, p: d.install(PushApp(p.app))),
    _device("force_quit", AppAction, lambda w, d, p: d.force_quit(p.app),
            "the user swipes the app away (iOS: no background pushes until open_app)"),
    _device("open_app", AppAction, lambda w, d, p: d.open_app(p.app),
            "the user launches the app"),
    _device("force_stop", AppAction, lambda w, d, p: d.force_stop(p.app),
            "Android's Force stop: no messages reach the app until open_app"),
    _device("low_power_mode", DeviceAction, lambda w, d, p: d.set_low_power(p.on),
            "iOS Low Power Mode on or off: background pushes wait while it is on"),
    _device("uninstall", AppAction, _uninstall),
    _device("login", UserAction, _login),
    _device("logout", UserAction, _logout),
    Action("note", str, _note),
    Action("outage", OutageAction, _outage),
    Action("recover", RecoverAction, _recover),
    Action("fault", FaultAction, _fault),
    Action("subscribe", SubscribeAction, _subscribe),
    Action("broker_restart", BrokerRestartAction, _broker_restart),
)}


def action(name: str) -> Action:
    """The registry's entry for ``name``; ValueError naming the known ones."""
    found = ACTIONS.get(name)
    if found is None:
        raise ValueError(f"no action {name!r}; one of: {', '.join(ACTIONS)}")
    return found


def device_actions() -> tuple[str, ...]:
    """The actions that apply to one device (a control API's per-phone verbs)."""
    return tuple(name for name, a in ACTIONS.items() if a.per_device)
