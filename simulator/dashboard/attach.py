"""The dashboard's engine for a lab another process runs (``pushlab up``).

:class:`AttachEngine` stands where :class:`~simulator.dashboard.engine.SimEngine`
stands for the Textual app, but owns no world: it reads the lab's control API. The
lab's trace arrives over ``/trace/ws`` (every hop of every message, the phones'
connections), each line decoded by :mod:`simulator.core.events` and handed to the
same :class:`~simulator.dashboard.model.Collector` a live run feeds; ``GET /devices``,
polled once a second, gives the device rows. The actions go to the control API
(device actions) or to the lab's own app server (sends). Time is real and the lab's,
so pause, step and speed are refused as in live mode.

The engine's loop runs on the dashboard's worker thread; the UI thread only reads
the :class:`Snapshot` it swaps in and hands requests over with
``run_coroutine_threadsafe``. :func:`device_row` and :func:`lab_snapshot` are plain
functions of the API's JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from simulator.core.events import TraceEvent
from simulator.dashboard.model import Collector, DeviceRow, EnergySeries, Snapshot

POLL_S = 1.0  # how often GET /devices is read
ENERGY_POINTS = 600


class AttachError(Exception):
    """A lab file that cannot be read, or a lab that does not answer (one line)."""


class _Seq(msgspec.Struct):
    seq: int


_SEQ = msgspec.json.Decoder(_Seq)


def read_lab_file(path: Path) -> dict[str, Any]:
    """lab.json's contents; :class:`AttachError` naming the file if it is not one."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttachError(f"{path}: no such file (pushlab up writes it; see --lab-file)") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttachError(f"{path}: cannot be read: {exc}") from None
    except ValueError as exc:
        raise AttachError(f"{path}: not JSON: {exc}") from None
    url = info.get("control_url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AttachError(f"{path}: control_url: missing; not a lab file written by "
                          "pushlab up")
    return info


def check_lab(info: dict[str, Any], path: Path, timeout: float = 3.0) -> dict[str, Any]:
    """``GET /lab`` of the running lab; :class:`AttachError` naming the URL if it does
    not answer as a lab does."""
    import httpx

    url = info["control_url"]
    try:
        r = httpx.get(f"{url}/lab", timeout=timeout)
        answer = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise AttachError(f"the lab at {url} (from {path}) does not answer: {exc}; "
                          "is pushlab up still running?") from None
    if not isinstance(answer, dict) or "clock" not in answer:
        raise AttachError(f"{url} (from {path}) answered GET /lab with HTTP "
                          f"{r.status_code}, not as a running lab does")
    return answer


def device_row(d: dict[str, Any]) -> DeviceRow:
    """One device row from a phone of ``GET /devices``."""
    if not d.get("powered", True):
        interface, address, radio = "off", "", "off"
    elif d.get("airplane"):
        interface, address, radio = "airplane", "", "off"
    elif not d.get("interface"):
        interface, address, radio = "none", "", "off"
    else:
        interface, address, radio = d["interface"], d.get("address") or "", d.get("radio", "")
    flags = " ".join(f for f, on in (("doze", d.get("dozing")), ("push", bool(d["apps"])))
                     if on)
    return DeviceRow(d["id"], d["platform"], interface, address, d["connection"], radio,
                     float(d.get("battery", {}).get("level_pct", math.nan)),
                     int(d.get("pending", 0)), int(d.get("delivered", 0)),
                     tuple(d["apps"]), flags)


def lab_snapshot(devices: dict[str, Any], collector: Collector, *, t: float, version: int,
                 name: str, view: tuple[str, int, int], energy: EnergySeries,
                 error: str | None = None) -> Snapshot:
    """The snapshot of a ``GET /devices`` answer and the trace collected so far."""
    phones = devices.get("devices", [])
    flt, offset, limit = view
    flt = flt.strip().lower()
    matched = [d for d in phones if not flt or flt in d["id"].lower()
               or flt in d["platform"] or flt == (d.get("user") or "").lower()]
    offset = max(0, min(offset, max(len(matched) - 1, 0)))
    states: dict[str, int] = {}
    platforms: dict[str, int] = {}
    for d in phones:
        key = f"{d['platform']}:{d['connection']}"
        states[key] = states.get(key, 0) + 1
        platforms[d["platform"]] = platforms.get(d["platform"], 0) + 1
    platform_of = {d["id"]: d["platform"] for d in phones}
    clock = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return Snapshot(
        version=version, t=t, clock=clock, paused=False, speed=1.0, effective_speed=1.0,
        duration=0.0, scenario=name, mode="live", devices_total=len(phones),
        devices_matched=len(matched), offset=offset,
        rows=tuple(device_row(d) for d in matched[offset:offset + limit]),
        states=states, platforms=platforms,
        stored=dict(devices.get("counts", {}).get("stored", {})), outage={},
        counts=dict(collector.counts), messages=collector.recent_messages(platform_of),
        energy=energy, events_total=collector.total,
        users=tuple(sorted({d["user"] for d in phones if d.get("user")})), error=error)


def energy_of(phones: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean battery used (%) and total joules of the phones (all push: a lab has no
    polling apps)."""
    levels = [d["battery"]["level_pct"] for d in phones if "battery" in d]
    used = sum(d["battery"]["used_j"] for d in phones if "battery" in d)
    return (100.0 - sum(levels) / len(levels) if levels else math.nan), used


class AttachEngine:
    """See the module docstring; the methods the dashboard calls, as SimEngine's."""

    mode = "live"

    def __init__(self, info: dict[str, Any], *, name: str = "", page: int = 40,
                 poll_every: float = POLL_S, tick: float = 0.1) -> None:
        self.info = info
        self.url: str = info["control_url"]
        self.name = name or f"lab {self.url.removeprefix('http://')}"
        self.poll_every = poll_every
        self.tick = tick
        self.collector = Collector()
        self.snapshot = Snapshot(scenario=self.name, paused=False, mode="live")
        self.paused = False
        self.speed = 1.0
        self.view_filter, self.view_offset, self.view_limit = "", 0, page
        self.started = False
        self.seq = 0  # the last trace event read
        self.devices: dict[str, Any] = {}
        self._t0_unix = time.time()
        self._stop = False
        self._done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notices: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._version = 0
        self._error: str | None = None
        self._energy: tuple[list[float], list[float], float] = ([], [], 0.0)
        self._session: aiohttp.ClientSession = None  # type: ignore[assignment]  # in _main

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Run on a daemon thread (headless use; the dashboard runs :meth:`run` itself)."""
        threading.Thread(target=self.run, name="pushlab-attach", daemon=True).start()

    def run(self) -> None:
        """The worker thread's body: follow the lab until :meth:`stop`."""
        self.started = True
        try:
            asyncio.run(self._main())
        finally:
            self._done.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
        if self.started:
            self._done.wait(timeout)

    # ---- what the UI reads --------------------------------------------------------------
    def notify(self, text: str, severity: str = "information") -> None:
        with self._lock:
            self._notices.append((severity, text))

    def notices(self) -> list[tuple[str, str]]:
        with self._lock:
            out, self._notices = self._notices, []
        return out

    def set_view(self, *, filter: str | None = None, offset: int | None = None,
                 limit: int | None = None) -> None:
        if filter is not None:
            self.view_filter = filter
        if offset is not None:
            self.view_offset = offset
        if limit is not None:
            self.view_limit = limit
        self._publish()

    # ---- clock controls: the lab's time is real ---------------------------------------
    def _refuse(self, what: str) -> None:
        self.notify(f"{what} is not available on a running lab: real time runs on",
                    "warning")

    def toggle_pause(self) -> bool:
        self._refuse("pause")
        return False

    def set_paused(self, paused: bool) -> None:
        self._refuse("pause")

    def step(self) -> None:
        self._refuse("step")

    def faster(self) -> float:
        self._refuse("changing speed")
        return self.speed

    def slower(self) -> float:
        self._refuse("changing speed")
        return self.speed

    # ---- actions -------------------------------------------------------------------------
    def device_action(self, device_id: str, name: str, **kw: Any) -> None:
        """The dashboard's device actions as the control API's (toggles resolved from
        the phone's last known state)."""
        phone = next((d for d in self.devices.get("devices", []) if d["id"] == device_id),
                     None)
        if phone is None:
            self.notify(f"no device {device_id}", "warning")
            return
        action, body = _device_request(phone, name, kw)
        self.notify(f"{device_id}: {action} {json.dumps(body) if body else ''}".rstrip())
        self._submit(action, self._post(f"/devices/{device_id}/actions/{action}", body))

    def nat_timeout(self, device_id: str) -> None:
        self.device_action(device_id, "nat_drop")

    def outage(self, provider: str, on: bool | None = None) -> None:
        self.notify("provider outages are not available on a running lab; POST "
                    f"{self.url}/providers/{provider}/faults fails its next sends", "warning")

    def send(self, *, user: str | None = None, topic: str | None = None,
             device: str | None = None, priority: str = "high", ttl: float | None = None,
             collapse: str | None = None, title: str = "Hello", body: str = "",
             app: str | None = None, count: int = 1) -> None:
        """Through the lab's own app server, as an outside caller of its REST API."""
        server = self.info.get("app_server") or {}
        if not server.get("url"):
            self.notify("this lab has no app server of PushLab's (--app-server none): "
                        "send from yours", "warning")
            return
        kind, target = next((k, v) for k, v in (("user", user), ("device", device),
                                                ("topic", topic)) if v is not None)
        note = {k: v for k, v in {"title": title, "body": body, "priority": priority,
                                  "ttl": ttl, "collapse_key": collapse, "app": app}.items()
                if v not in (None, "")}
        url = f"{server['url']}/v1/send/{kind}/{target}"
        self.notify(f"sending '{title}' to {kind} {target}")
        headers = {"X-API-Key": server.get("api_key") or ""}
        for _ in range(count):
            self._submit("send", self._post(url, note, headers))

    def _submit(self, what: str, coro: Coroutine[Any, Any, None]) -> None:
        loop = self._loop
        if loop is None or self._stop:
            coro.close()
            self.notify(f"{what}: not connected to the lab", "warning")
            return
        asyncio.run_coroutine_threadsafe(coro, loop)

    async def _post(self, path: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
        url = path if path.startswith("http") else self.url + path
        try:
            async with self._session.post(url, json=body, headers=headers) as r:
                if r.status >= 300:
                    text = await r.text()
                    self.notify(f"{url}: HTTP {r.status}: {text[:200]}", "error")
        except aiohttp.ClientError as exc:
            self.notify(f"{url}: {exc}", "error")

    # ---- the loop (worker thread) -----------------------------------------------------------
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                       sock_connect=5)) as s:
            self._session = s
            try:
                async with s.get(f"{self.url}/lab") as r:
                    clock = (await r.json())["clock"]
                self._t0_unix = float(clock["t0_unix"])
            except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
                self._lost(f"GET {self.url}/lab: {exc}")
            tasks = [asyncio.create_task(self._follow_trace()),
                     asyncio.create_task(self._poll_devices())]
            try:
                while not self._stop:
                    await asyncio.sleep(self.tick)
                    self._publish()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None

    async def _follow_trace(self) -> None:
        """Every trace event, from the oldest the lab keeps, into the collector."""
        try:
            async with self._session.ws_connect(f"{self.url}/trace/ws?since={self.seq}",
                                                heartbeat=15.0) as ws:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    self._take(msg.data)
        except aiohttp.ClientError as exc:
            self._lost(f"its trace stream ({self.url}/trace/ws): {exc}")
            return
        if not self._stop:
            self._lost(f"its trace stream closed ({self.url}/trace/ws)")

    def _take(self, line: str) -> None:
        try:
            self.seq = _SEQ.decode(line).seq
            event = TraceEvent.from_json(line)
        except msgspec.ValidationError:  # a kind this build does not know
            return
        self.collector(event)

    async def _poll_devices(self) -> None:
        """``GET /devices`` every :attr:`poll_every` seconds, or ten times as long as it
        took, whichever is longer: a big lab spends at most a tenth of its loop on it."""
        took = 0.0
        while not self._stop:
            try:
                started = time.perf_counter()
                async with self._session.get(f"{self.url}/devices") as r:
                    self.devices = await r.json()
                took = time.perf_counter() - started
                self._sample_energy()
                if self._error:
                    self._error = None
                    self.notify("the lab answers again")
            except (aiohttp.ClientError, ValueError) as exc:
                self._lost(f"GET {self.url}/devices: {exc}")
            await asyncio.sleep(max(self.poll_every, 10.0 * took))

    def _lost(self, why: str) -> None:
        if self._error is None:
            self.notify(f"the lab at {self.url} stopped or does not answer: {why}", "error")
        self._error = f"lab gone: {why}"

    def _sample_energy(self) -> None:
        times, used, _ = self._energy
        pct, joules = energy_of(self.devices.get("devices", []))
        times.append(time.time() - self._t0_unix)
        used.append(pct)
        if len(times) > ENERGY_POINTS:
            del times[::2], used[::2]
        self._energy = (times, used, joules)

    def _publish(self) -> None:
        times, used, joules = self._energy
        phones = self.devices.get("devices", [])
        energy = EnergySeries(tuple(times), tuple(used), (), joules, 0.0, len(phones), 0)
        self._version += 1
        self.snapshot = lab_snapshot(
            self.devices, self.collector, t=time.time() - self._t0_unix,
            version=self._version, name=self.name,
            view=(self.view_filter, self.view_offset, self.view_limit), energy=energy,
            error=self._error)


def _device_request(phone: dict[str, Any], name: str,
                    kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The control API action and body for a dashboard action on ``phone``."""
    if name == "switch_network":
        cellular = next((k for k in ("lte", "5g", "3g") if k in phone.get("interfaces", ())),
                        "lte")
        return name, {"network": kw.get("network") or (
            cellular if phone.get("interface") == "wifi" else "wifi")}
    if name in ("airplane", "doze"):
        state = phone.get("airplane" if name == "airplane" else "dozing")
        return name, {"on": kw.get("on", not state)}
    if name == "offline":
        return ("offline" if kw.get("on", not phone.get("offline")) else "online"), {}
    if name == "uninstall":
        return name, {"app": kw.get("app") or next(iter(phone["apps"]), "")}
    return name, {}
