"""The simulation thread behind the dashboard.

Textual runs its own asyncio loop, and a :class:`VirtualTimeLoop` cannot nest in
it, so the world lives on a thread of its own: :meth:`SimEngine.run`, which the
dashboard runs as a Textual thread worker (``@work(thread=True)``) and headless
callers through :meth:`SimEngine.start`. That thread advances virtual time in
chunks paced by the chosen speed (1x .. as fast as possible), waits on a
:class:`threading.Event` while paused, and runs commands between chunks.

One rule keeps the threads apart: everything the UI asks for (pause, speed, the
devices table's window, world actions) is a command put on one queue
(:meth:`SimEngine.call`) and carried out on the sim thread, which alone writes
the engine's state and touches sim objects. The UI only reads the
:class:`Snapshot` it publishes (a reference swap) and the :class:`Collector`
(under its lock). Actions are built from the registry in :mod:`simulator.actions`.

Determinism: the engine consumes no random numbers and observes energy without
settling the radios (``Device.energy_at`` only reads), so a watched run emits
the same message lifecycle as ``pushlab run`` with the same seed, whatever the
pacing. Actions land at the virtual instant the sim thread picks them up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from devices.apps import PollingApp, PushApp
from devices.device import Device
from simulator.actions import ACTIONS
from simulator.core.clock import VirtualTimeLoop, close_loop
from simulator.dashboard.model import Collector, DeviceRow, EnergySeries, Snapshot
from simulator.durations import format_duration
from simulator.scenario import Scenario
from simulator.world import World, build_world

SPEEDS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 1800.0, 7200.0, math.inf)
"""Speed steps of the ``+``/``-`` keys; ``inf`` means as fast as possible."""

Notice = tuple[str, str]  # (severity "information" | "warning" | "error", text)


def speed_label(speed: float) -> str:
    return "max" if math.isinf(speed) else f"{speed:g}x"


def is_polling(device: Device) -> bool:
    return any(isinstance(app, PollingApp) for app in device.apps.values())


class SimEngine:
    """Runs one world on a thread; the UI drives it through the methods below."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, speed: float = 60.0,
                 paused: bool = False, tick: float = 0.05, publish_every: float = 0.05,
                 page: int = 40, world_factory: Callable[[Scenario, Any, int | None], World]
                 | None = None, mode: str = "sim") -> None:
        self.scenario = scenario
        self.seed = seed
        self.speed = speed
        self.paused = paused
        self.tick = tick
        self.publish_every = publish_every
        self.mode = mode
        self.collector = Collector()
        self.snapshot = Snapshot(scenario=scenario.name, paused=paused, speed=speed,
                                 duration=scenario.duration, mode=mode)
        self._world_factory = world_factory or build_world
        self._commands: queue.Queue[Callable[[], Any]] = queue.Queue()
        self._notices: queue.Queue[Notice] = queue.Queue()
        self._wake = threading.Event()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._parked = False
        self._dirty = True
        self._stop = False
        self.started = False  # run() was entered (by a worker or start())
        self._done = threading.Event()  # run() has returned
        self._version = 0
        self._end_announced = False
        self._effective = 0.0
        # the devices table's window: set_view() changes it on the sim thread
        self.view_filter = ""
        self.view_offset = 0
        self.view_limit = page
        self.world: World | None = None  # sim-thread only; tests may read it when paused
        self._energy: dict[str, list[float]] = {"t": [], "push": [], "poll": []}
        self._energy_totals = (0.0, 0.0, 0, 0, False)
        self._sample_every = max(scenario.duration / 150.0, 1.0)
        self._outage: dict[str, bool] = {}
        self._tasks: set[asyncio.Task] = set()
        self.fleet_every = 0.5 if len(scenario.devices) and sum(
            d.count for d in scenario.devices) > 1_000 else 0.0
        self._fleet_cache: tuple[float, dict[str, int], dict[str, int], tuple[str, ...]] | None \
            = None
        self._fleet_version = -1
        self._classes: tuple[tuple[int, int], list[Device], list[Device]] | None = None
        self._commands_done = 0

    # ---- lifecycle (UI thread) -----------------------------------------------------
    def start(self) -> None:
        """Run the engine on a daemon thread (headless use; the dashboard uses a worker)."""
        threading.Thread(target=self.run, name="pushlab-sim", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the sim thread to finish and wait for it (up to ``timeout`` seconds)."""
        self._stop = True
        self._wake.set()
        if self.started:
            self._done.wait(timeout)

    # ---- controls (UI thread) ------------------------------------------------------
    def _live_refuses(self, what: str) -> bool:
        if self.mode == "live":
            self.notify(f"{what} is not available in live mode: real time runs on", "warning")
            return True
        return False

    def set_paused(self, paused: bool) -> None:
        if self._live_refuses("pause"):
            return
        self.call(lambda: self._set(paused=paused))

    def toggle_pause(self) -> bool:
        """Flip pause; returns the state asked for (the sim thread applies it)."""
        if self._live_refuses("pause"):
            return False
        paused = not self.paused
        self.set_paused(paused)
        return paused

    def set_speed(self, speed: float) -> None:
        if self._live_refuses("changing speed"):
            return
        self.call(lambda: self._set(speed=speed))

    def faster(self) -> float:
        bigger = [s for s in SPEEDS if s > self.speed]
        speed = bigger[0] if bigger else self.speed
        self.set_speed(speed)
        return speed

    def slower(self) -> float:
        smaller = [s for s in SPEEDS if s < self.speed]
        speed = smaller[-1] if smaller else self.speed
        self.set_speed(speed)
        return speed

    def set_view(self, *, filter: str | None = None, offset: int | None = None,
                 limit: int | None = None) -> None:
        """Change the devices table's window (filter text, first row, rows shown)."""
        self.call(lambda: self._set_view(filter, offset, limit))

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the sim thread between chunks (it may return a coroutine)."""
        with self._pending_lock:
            self._pending += 1
        self._commands.put(fn)
        self._wake.set()

    def step(self) -> None:
        """Advance to the next trace event (paused afterwards)."""
        if self._live_refuses("step"):
            return
        self.call(_blocking(lambda: self._step()))

    def advance(self, seconds: float) -> None:
        """Run ``seconds`` of virtual time as fast as possible, then pause (tests, scripts)."""
        self.call(_blocking(lambda: self._advance(seconds)))

    def sync(self, timeout: float = 30.0) -> bool:
        """Block until every queued command ran and the sim sits paused (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pending == 0 and self._parked and self.paused:
                return True
            if self._done.is_set():
                return False
            time.sleep(0.005)
        return False

    def notices(self) -> list[Notice]:
        out = []
        while True:
            try:
                out.append(self._notices.get_nowait())
            except queue.Empty:
                return out

    def notify(self, text: str, severity: str = "information") -> None:
        self._notices.put((severity, text))

    # ---- user actions (UI thread; executed on the sim thread) -------------------------
    def send(self, *, user: str | None = None, topic: str | None = None,
             device: str | None = None, priority: str = "high", ttl: float | None = None,
             collapse: str | None = None, title: str = "Hello", body: str = "",
             app: str | None = None, count: int = 1) -> None:
        def run() -> Any:
            fields = {"user": user, "topic": topic, "device": device, "priority": priority,
                      "ttl": ttl, "collapse": collapse, "title": title, "body": body,
                      "app": app, "count": count}
            action = ACTIONS["send"].parse({k: v for k, v in fields.items() if v is not None})
            world = self._w()
            if topic is not None and not _supports_topics(world):
                self.notify(f"topic sends are not available in this build (topic {topic})",
                            "warning")
                return None
            target = user or device or f"topic {topic}"
            self.notify(f"sending '{title}' to {target} ({priority}, "
                        f"ttl {'default' if ttl is None else format_duration(ttl)}"
                        f"{', collapse ' + collapse if collapse else ''})")
            return self._guard("send", world.act("send", action))

        self.call(run)

    def device_action(self, device_id: str, name: str, **kw: Any) -> None:
        """switch_network, change_address, airplane, reboot, doze, offline, uninstall."""
        self.call(lambda: self._device_action(device_id, name, kw))

    def outage(self, provider: str, on: bool | None = None) -> None:
        self.call(lambda: self._set_outage(provider, on))

    def nat_timeout(self, device_id: str) -> None:
        self.call(lambda: self._nat_timeout(device_id))

    # ---- sim thread --------------------------------------------------------------------
    def _w(self) -> World:
        assert self.world is not None
        return self.world

    def run(self) -> None:
        """The sim thread's body: build the world and run it until :meth:`stop`."""
        self.started = True
        loop = VirtualTimeLoop() if self.mode == "sim" else asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop))
        except Exception as exc:  # shown in the UI rather than lost on a thread
            self.snapshot = dataclasses.replace(self.snapshot, error=f"{type(exc).__name__}: {exc}")
            self.notify(f"simulation stopped: {type(exc).__name__}: {exc}", "error")
        finally:
            self._parked = True
            try:
                close_loop(loop)
            except Exception as exc:  # a task that will not die must not hang the UI
                self.notify(f"shutdown: {type(exc).__name__}: {exc}", "warning")
            self._done.set()

    def _set(self, *, paused: bool | None = None, speed: float | None = None) -> None:
        if paused is not None:
            self.paused = paused
        if speed is not None:
            self.speed = speed
        self._dirty = True

    def _set_view(self, flt: str | None, offset: int | None, limit: int | None) -> None:
        if flt is not None:
            self.view_filter = flt
        if offset is not None:
            self.view_offset = offset
        if limit is not None:
            self.view_limit = limit
        self._dirty = True

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.mode == "live":
            await self._main_live(loop)
            return
        world = self.world = self._world_factory(self.scenario, loop, self.seed)
        await self._run_world(world, loop)

    async def _main_live(self, loop: asyncio.AbstractEventLoop) -> None:
        """Real sockets on loopback (simulator/live/world.py); the clock is the wall's."""
        from simulator.live.world import LiveWiring  # real sockets only when asked for

        t0 = loop.time()
        world = build_world(self.scenario, loop, self.seed, clock=lambda: loop.time() - t0)
        world.t0 = t0
        world.time_scale = 1.0 / self.speed if not math.isinf(self.speed) else 0.01
        self.paused = False
        async with LiveWiring(world):
            self.world = world
            world.trace.subscribe(self.collector)
            for device in world.devices.values():
                device.power_on()
            self._schedule_timeline(world)
            loop.call_soon(self._sample_energy)
            while not self._stop:
                await self._run_commands()
                await asyncio.sleep(self.tick)
                self._publish()
            for device in world.devices.values():  # close links before the wiring goes
                device.daemon.network_changed(loop.time(), None, "")

    async def _run_world(self, world: World, loop: asyncio.AbstractEventLoop) -> None:
        world.trace.subscribe(self.collector)
        for device in world.devices.values():
            device.power_on()
        self._schedule_timeline(world)
        loop.call_soon(self._sample_energy)
        last_publish = 0.0
        self._publish()
        while not self._stop:
            await self._run_commands()
            if self.paused:
                if self._dirty:
                    self._dirty = False
                    self._publish()
                if self._commands.empty():
                    self._parked = True
                    self._wake.wait(0.1)
                    self._wake.clear()
                continue
            self._parked = False
            self._dirty = True
            started = time.perf_counter()
            v0 = loop.time()
            if math.isinf(self.speed):
                await self._run_for_wall(self.tick)
                # At full speed this thread would hold the GIL almost all the time and
                # starve the UI's refresh timer; a short sleep hands it over.
                time.sleep(self.tick * 0.2)
            else:
                await asyncio.sleep(self.speed * self.tick)
            self._check_end()
            spent = time.perf_counter() - started
            if not math.isinf(self.speed) and spent < self.tick:
                self._wake.wait(self.tick - spent)
                self._wake.clear()
            wall = time.perf_counter() - started
            self._effective = (loop.time() - v0) / wall if wall > 0 else 0.0
            if time.perf_counter() - last_publish >= self.publish_every:
                self._publish()
                last_publish = time.perf_counter()

    _chunk = 1.0

    async def _run_for_wall(self, budget: float, until: float | None = None) -> None:
        """As fast as possible for ``budget`` wall seconds (chunks sized adaptively)."""
        loop = self._w().loop
        deadline = time.perf_counter() + budget
        while time.perf_counter() < deadline and not self._stop:
            chunk = self._chunk
            if until is not None:
                chunk = min(chunk, until - loop.time())
                if chunk <= 0:
                    return
            t0 = time.perf_counter()
            await asyncio.sleep(chunk)
            took = time.perf_counter() - t0
            if took < 0.002:
                self._chunk = min(self._chunk * 2.0, 3600.0)
            elif took > 0.02:
                self._chunk = max(self._chunk / 2.0, 0.01)
            if not self._commands.empty():
                return

    def _check_end(self) -> None:
        world = self._w()
        if not self._end_announced and world.loop.time() - world.t0 >= self.scenario.duration:
            self._end_announced = True
            self.paused = True
            self.notify(f"end of the scenario ({format_duration(self.scenario.duration)}): "
                        "paused; press space to keep running")

    async def _run_commands(self) -> None:
        ran = False
        while True:
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                break
            ran = True
            self._parked = False
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    if getattr(fn, "blocking", False):
                        await result
                    else:  # a world action: it unfolds as virtual time runs
                        self._spawn(result)
            except Exception as exc:  # an action that fails must not stop the world
                self.notify(f"action failed: {type(exc).__name__}: {exc}", "error")
            finally:
                if ran:
                    for _ in range(8):  # let zero-time consequences (frames queued now) run
                        await asyncio.sleep(0)
                with self._pending_lock:
                    self._pending -= 1
                self._commands_done += 1
        if ran:
            self._check_end()
            self._publish()

    async def _advance(self, seconds: float) -> None:
        self.paused = True
        loop = self._w().loop
        until = loop.time() + seconds
        while loop.time() < until - 1e-9 and not self._stop:
            await self._run_for_wall(self.publish_every, until)
            self._publish()

    async def _step(self) -> None:
        self.paused = True
        loop = self._w().loop
        before = self.collector.total
        limit = loop.time() + 86_400.0
        for _ in range(100_000):
            when = _next_timer(loop)
            if when is None or when > limit:
                break
            await asyncio.sleep(max(when - loop.time(), 0.0))
            if self.collector.total > before:
                break
        self._check_end()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_timeline(self, world: World) -> None:
        loop = world.loop

        def fire(name: str, action: Any) -> None:
            self._spawn(self._guard(name, world.act(name, action)))

        t0 = getattr(world, "t0", 0.0)
        scale = getattr(world, "time_scale", 1.0)
        for entry in sorted(world.scenario.timeline, key=lambda e: e.at):
            name, action = entry.action
            loop.call_at(t0 + entry.at * scale, fire, name, action)

    async def _guard(self, name: str, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:  # e.g. a sender not wired yet for a platform
            self.notify(f"{name} failed: {type(exc).__name__}: {exc}", "error")

    def _device_action(self, device_id: str, name: str, kw: dict[str, Any]) -> Any:
        world = self._w()
        device = world.devices.get(device_id)
        if device is None:
            self.notify(f"no device {device_id}", "warning")
            return None
        if name == "uninstall":
            app = kw.get("app") or next(iter(device.apps), None)
            if app is None:
                self.notify(f"{device_id} has no app to uninstall", "warning")
                return None
            self.notify(f"uninstalling {app} from {device_id}")
            return self._act("uninstall", {"device": device_id, "app": app})
        params: dict[str, Any] = {"device": device_id}
        text = name
        if name == "switch_network":
            active = device.active_interface()
            target = kw.get("network") or ("wifi" if active is None or active.kind != "wifi"
                                           else _cellular_of(device))
            params["network"] = target
            text = f"{device_id} switches to {target}"
        elif name == "change_address":
            text = f"{device_id} gets a new address"
        elif name == "airplane":
            on = params["on"] = kw.get("on", not device.airplane)
            text = f"{device_id}: airplane mode {'on' if on else 'off'}"
        elif name == "doze":
            on = params["on"] = kw.get("on", not device.dozing)
            text = f"{device_id}: doze {'on' if on else 'off'}"
        elif name == "offline":
            offline = kw.get("on", not _is_offline(device))
            name = "offline" if offline else "online"
            text = f"{device_id}: {'loses coverage' if offline else 'back in coverage'}"
        elif name == "reboot":
            text = f"{device_id} reboots"
        self.notify(text)
        return self._act(name, params)

    def _act(self, name: str, params: Any) -> Any:
        """A registered action on the world, as the timeline would run it."""
        return self._guard(name, self._w().act(name, ACTIONS[name].parse(params)))

    def _set_outage(self, provider: str, on: bool | None) -> Any:
        """Through the world's ``outage``/``recover`` actions."""
        now_on = not self._outage.get(provider, False) if on is None else on
        result = self._act("outage" if now_on else "recover", {"provider": provider})
        self._outage[provider] = now_on
        self.notify(f"{provider.upper()} outage {'ON: sends get 503' if now_on else 'over'}",
                    "warning" if now_on else "information")
        return result

    def _nat_timeout(self, device_id: str) -> None:
        """The NAT in front of the device forgets its binding now (silently, as NATs do)."""
        device = self._w().devices.get(device_id)
        if device is None:
            return
        if device.expire_nat():
            self.notify(f"{device_id}: the carrier NAT dropped its binding; the daemon "
                        "finds out at its next heartbeat")
        else:
            self.notify(f"{device_id} has no active interface: no NAT to expire", "warning")

    # ---- observation (sim thread) -------------------------------------------------------
    def _sample_energy(self) -> None:
        world = self._w()
        loop = world.loop
        now = loop.time()
        key = (len(world.devices), self._commands_done)
        if self._classes is None or self._classes[0] != key:
            push_l: list[Device] = []
            poll_l: list[Device] = []
            for device in world.devices.values():
                (poll_l if is_polling(device) else push_l).append(device)
            self._classes = (key, push_l, poll_l)
        _, push, poll = self._classes
        estimated = len(world.devices) > 2_000
        sums = []
        means = []
        for group in (push, poll):
            sample = group[:: max(1, len(group) // 500)] if estimated else group
            joules = [d.energy_at(now) for d in sample]
            pct = [d.battery.percent(j) for d, j in zip(sample, joules, strict=True)]
            total = sum(joules) * (len(group) / len(sample)) if sample else 0.0
            sums.append(total)
            means.append(sum(pct) / len(pct) if pct else math.nan)
        series = self._energy
        series["t"].append(now - world.t0)
        series["push"].append(means[0])
        series["poll"].append(means[1])
        if len(series["t"]) > 600:  # keep the plot light on long runs
            for key in series:
                series[key] = series[key][::2]
            self._sample_every *= 2
        self._energy_totals = (sums[0], sums[1], len(push), len(poll), estimated)
        loop.call_at(now + self._sample_every, self._sample_energy)

    def _publish(self) -> None:
        world = self.world
        if world is None:
            return
        now = world.loop.time()
        devices = world.devices
        ids = list(devices)
        flt = self.view_filter.strip().lower()
        if flt:
            ids = [i for i in ids if flt in i.lower() or flt in devices[i].platform
                   or flt == (devices[i].user or "").lower()]
        offset = max(0, min(self.view_offset, max(len(ids) - 1, 0)))
        rows = tuple(self._row(devices[i], now) for i in ids[offset:offset + self.view_limit])
        states, platforms, users = self._fleet(devices)
        stored = {name: b.store.total() for name, b in world.providers.backends.items()}
        push_j, poll_j, n_push, n_poll, estimated = self._energy_totals
        series = self._energy
        energy = EnergySeries(tuple(series["t"]), tuple(series["push"]), tuple(series["poll"]),
                              push_j, poll_j, n_push, n_poll, estimated)
        platform_of = {}
        for view in self.collector.recent:
            life = self.collector.lives.get(view)
            if life:
                dev = getattr(life[0], "device", None)
                if dev in devices:
                    platform_of[dev] = devices[dev].platform
        self._version += 1
        t = now - world.t0
        clock = datetime.fromtimestamp(world.epoch + t, UTC).strftime("%Y-%m-%d %H:%M:%S")
        self.snapshot = Snapshot(
            version=self._version, t=t, clock=clock, paused=self.paused, speed=self.speed,
            effective_speed=0.0 if self.paused else self._effective,
            duration=self.scenario.duration, scenario=self.scenario.name, mode=self.mode,
            devices_total=len(devices), devices_matched=len(ids), offset=offset, rows=rows,
            states=dict(states), platforms=dict(platforms), stored=stored,
            outage=dict(self._outage), counts=dict(self.collector.counts),
            messages=self.collector.recent_messages(platform_of), energy=energy,
            events_total=self.collector.total,
            users=users,
        )

    def _fleet(self, devices: dict[str, Device]) -> tuple[dict[str, int], dict[str, int],
                                                          tuple[str, ...]]:
        """Fleet-wide counts: a few ms for 10,000 devices, so at most twice a second."""
        now = time.perf_counter()
        cached = self._fleet_cache
        if cached is not None and now - cached[0] < self.fleet_every and \
                self._fleet_version == self._commands_done:
            return cached[1], cached[2], cached[3]
        by_platform: dict[str, list[Device]] = {}
        for d in devices.values():
            by_platform.setdefault(d.platform, []).append(d)
        states: dict[str, int] = {}
        for platform, group in by_platform.items():
            for state, n in Counter(d.daemon.state for d in group).items():
                states[f"{platform}:{state}"] = n
        platforms = {p: len(g) for p, g in by_platform.items()}
        users = tuple(sorted({d.user for d in devices.values() if d.user}))
        self._fleet_cache = (now, states, platforms, users)
        self._fleet_version = self._commands_done
        return states, platforms, users

    def _row(self, device: Device, now: float) -> DeviceRow:
        iface = device.active_interface()
        if not device.powered:
            interface, address, radio = "off", "", "off"
        elif device.airplane:
            interface, address, radio = "airplane", "", "off"
        elif iface is None:
            interface, address, radio = "none", "", "off"
        else:
            interface, address = iface.kind, iface.path.address
            radio = iface.radio.state_at(now)
        pending = 0
        for backend in self._w().providers.backends.values():
            q = backend.store.queues.get(device.device_id)
            if q:
                pending += len(q)
        energy = device.energy_at(now)
        flags = []
        if getattr(device, "dozing", False):
            flags.append("doze")
        if is_polling(device):
            flags.append("poll")
        if any(isinstance(a, PushApp) for a in device.apps.values()):
            flags.append("push")
        return DeviceRow(device.device_id, device.platform, interface, address,
                         device.daemon.state, radio,
                         max(0.0, 100.0 - device.battery.percent(energy)), pending,
                         self.collector.handed.get(device.device_id, 0),
                         tuple(device.apps), " ".join(flags), device.daemons.states())


def _blocking(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Mark an engine command whose coroutine must finish before the next command."""
    fn.blocking = True  # type: ignore[attr-defined]
    return fn


def _next_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    """The earliest live timer (heap entries are handles or (when, seq, handle) tuples)."""
    best = None
    for entry in getattr(loop, "_scheduled", ()):
        handle = entry[-1] if isinstance(entry, tuple) else entry
        if handle.cancelled():
            continue
        when = handle.when()
        if best is None or when < best:
            best = when
    return best


def _cellular_of(device: Device) -> str:
    for kind in ("lte", "5g", "3g"):
        if kind in device.interfaces:
            return kind
    return "lte"


def _is_offline(device: Device) -> bool:
    return bool(device.interfaces) and not any(i.path.up for i in device.interfaces.values())


def _supports_topics(world: World) -> bool:
    return any(hasattr(x, n) for x in (world, world.app_server)
               for n in ("send_to_topic", "send_topic"))
