"""Pytest fixtures for testing your own app server against a live PushLab lab.

Installed as a ``pytest11`` plugin, so with PushLab installed the fixtures are just there:

* ``pushlab_lab``: a whole live lab (APNs and FCM look-alikes, device gateways, an
  embedded broker, simulated phones) on free loopback ports, as a :class:`LabClient`;
  configure it by overriding the ``pushlab_config`` fixture (the options of
  ``pushlab up``: ``devices``, ``android``, ``apps``, ``app_server``, ``register_url``,
  ``register_template``, ``broker_url``). ``pushlab_session_lab`` is the same once per
  session, configured by ``pushlab_session_config``.
* ``fake_apns`` and ``fake_fcm``: one provider alone, with its CA, key and credentials.

The lab runs on its own event loop in a thread, so sync and async tests both use it;
:attr:`LabClient.aio` has every helper as a coroutine for async tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


class LoopThread:
    """An event loop in a daemon thread; ``run(coro)`` waits for the coroutine's result."""

    def __init__(self, name: str = "pushlab") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = 60.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapped() -> Any:
            return fn()

        return self.run(wrapped())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class DeviceHandle:
    """One phone of the lab: its status and the timeline's actions on it."""

    def __init__(self, lab: LabClient, device_id: str) -> None:
        self.lab = lab
        self.id = device_id

    def status(self) -> dict[str, Any]:
        return self.lab._get(f"/devices/{self.id}")

    def token(self, app: str | None = None) -> str | None:
        apps = self.status()["apps"]
        return apps[app or next(iter(apps))]["token"]

    def inbox(self, since: int = 0) -> list[dict[str, Any]]:
        return self.lab.inbox(self.id, since)

    def act(self, action: str, **fields: Any) -> dict[str, Any]:
        """Any timeline device action by name (``offline``, ``change_address``, ...)."""
        return self.lab._post(f"/devices/{self.id}/actions/{action}", fields)

    def go_offline(self) -> dict[str, Any]:
        return self.act("offline")

    def go_online(self) -> dict[str, Any]:
        return self.act("online")

    def change_ip(self) -> dict[str, Any]:
        return self.act("change_address")

    def nat_drop(self) -> dict[str, Any]:
        return self.act("nat_drop")

    def reboot(self) -> dict[str, Any]:
        return self.act("reboot")

    def uninstall(self, app: str) -> dict[str, Any]:
        return self.act("uninstall", app=app)

    def install(self, app: str) -> dict[str, Any]:
        return self.act("install", app=app)


class LabClient:
    """A running lab seen through its control API (``info`` is its lab.json)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.url = info["control_url"]
        self._http = httpx.Client(base_url=self.url, timeout=30.0)
        self.aio = _Aio(self)

    # ---- plumbing --------------------------------------------------------------------
    def _get(self, path: str, **params: Any) -> Any:
        r = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        if r.status_code >= 400:
            raise LabError(f"GET {path}: {r.status_code} {r.json().get('error')}")
        return r.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        r = self._http.post(path, json=body)
        if r.status_code >= 400:
            raise LabError(f"POST {path}: {r.status_code} {r.json().get('error')}")
        return r.json()

    def close(self) -> None:
        self._http.close()

    # ---- what a test reads ---------------------------------------------------------------
    @property
    def apns(self) -> dict[str, Any]:
        return self.info["apns"]

    @property
    def fcm(self) -> dict[str, Any]:
        return self.info["fcm"]

    def devices(self) -> list[dict[str, Any]]:
        return self._get("/devices")["devices"]

    def device(self, device_id: str) -> DeviceHandle:
        return DeviceHandle(self, device_id)

    def inbox(self, device: str, since: int = 0) -> list[dict[str, Any]]:
        return self._get(f"/devices/{device}/inbox", since=since)["entries"]

    def cursor(self) -> int:
        """The newest delivery's number: pass it as ``since`` to wait for a later one."""
        return self._get("/devices")["counts"]["delivered"]

    def wait_for_delivery(self, device: str, app: str | None = None, timeout: float = 10.0,
                          since: int = 0,
                          where: Callable[[dict[str, Any]], bool] | None = None
                          ) -> dict[str, Any]:
        """The first inbox entry after ``since`` for ``app`` (and ``where``), waiting up to
        ``timeout`` seconds for it; AssertionError naming what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.inbox(device, since)
            for entry in entries:
                if (app is None or entry["app"] == app) and (where is None or where(entry)):
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no delivery to {device} ({app or 'any app'}) within "
                                     f"{timeout:g} s; its inbox after {since}: {entries}")
            time.sleep(0.05)

    def wait_registered(self, device: str, app: str, timeout: float = 10.0) -> str:
        """The token once the app's registration with the app server went through."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.device(device).status()["apps"].get(app) or {}
            reg = status.get("registration") or {}
            if reg.get("state") == "registered" and reg.get("token") == status.get("token"):
                return status["token"]
            if time.monotonic() > deadline:
                raise AssertionError(f"{device}/{app} not registered within {timeout:g} s: "
                                     f"{status}")
            time.sleep(0.05)

    def sent(self, provider: str, token: str | None = None) -> list[dict[str, Any]]:
        """What ``provider`` (``apns`` or ``fcm``) was sent, oldest first (its activity log)."""
        return self._get(f"/providers/{provider}/activity", token=token)["entries"]

    def fail_next(self, provider: str, token: str | None, status: int,
                  reason: str | None = None, count: int = 1) -> None:
        """The provider answers the next ``count`` sends to ``token`` with this error."""
        self._post(f"/providers/{provider}/faults",
                   {"token": token, "status": status, "reason": reason, "count": count})

    def add_device(self, platform: str = "ios", apps: list[str] | None = None) -> DeviceHandle:
        body: dict[str, Any] = {"platform": platform}
        if apps:
            body["apps"] = apps
        return DeviceHandle(self, self._post("/devices", body)["id"])


class LabError(RuntimeError):
    """The control API refused a request (its reason is in the message)."""


class _Aio:
    """Every :class:`LabClient` helper as a coroutine (run in a worker thread), so an
    async test's own server keeps serving while the test waits."""

    def __init__(self, client: LabClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._client, name)

        async def call(*args: Any, **kw: Any) -> Any:
            return await asyncio.to_thread(fn, *args, **kw)

        return call


# ---- starting a lab ------------------------------------------------------------------------

def start_lab(workdir: Path, ready_timeout: float = 30.0, registered: bool = True,
              **options: Any) -> tuple[LoopThread, Any, LabClient]:
    """A lab on free ports in a thread, once every phone is connected (and registered)."""
    from simulator.live.lab import Lab, LabConfig

    thread = LoopThread("pushlab-lab")
    lab = Lab(LabConfig(workdir=workdir, **options))
    try:
        thread.run(lab.start())
        thread.run(lab.wait_ready(ready_timeout, registered), timeout=ready_timeout + 5)
        thread.call(lab.refresh_tokens)
    except BaseException:
        thread.run(lab.close())
        thread.stop()
        raise
    return thread, lab, LabClient(lab.info)


def stop_lab(thread: LoopThread, lab: Any, client: LabClient) -> None:
    client.close()
    thread.run(lab.close())
    thread.stop()


def _options(config: dict[str, Any]) -> tuple[dict[str, Any], float, bool]:
    options = dict(config)
    timeout = float(options.pop("ready_timeout", 30.0))
    registered = bool(options.pop("wait_registered", True))
    return options, timeout, registered


@pytest.fixture
def pushlab_config() -> dict[str, Any]:
    """Override to configure ``pushlab_lab`` (the options of ``pushlab up``)."""
    return {"devices": 2}


@pytest.fixture
def pushlab_lab(pushlab_config: dict[str, Any], tmp_path: Path) -> Iterator[LabClient]:
    """A whole live lab on free loopback ports, stopped after the test."""
    options, timeout, registered = _options(pushlab_config)
    thread, lab, client = start_lab(tmp_path / "pushlab-lab", timeout, registered, **options)
    try:
        yield client
    finally:
        stop_lab(thread, lab, client)


@pytest.fixture(scope="session")
def pushlab_session_config() -> dict[str, Any]:
    """Override to configure ``pushlab_session_lab``."""
    return {"devices": 2}


@pytest.fixture(scope="session")
def pushlab_session_lab(pushlab_session_config: dict[str, Any],
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabClient]:
    """One live lab for the whole session."""
    options, timeout, registered = _options(pushlab_session_config)
    thread, lab, client = start_lab(tmp_path_factory.mktemp("pushlab-lab"), timeout,
                                    registered, **options)
    try:
        yield client
    finally:
        stop_lab(thread, lab, client)


# ---- one provider alone ----------------------------------------------------------------------

@dataclass
class FakeApns:
    """The APNs look-alike alone: both environments, TLS with ``ca``, a trusted .p8 key."""

    url: str
    sandbox_url: str
    host: str
    port: int
    sandbox_port: int
    admin_url: str
    ca: str
    key_file: str
    key_id: str
    team_id: str
    _thread: LoopThread
    _lab: Any

    def issue(self, device: str, app: str, environment: str = "production") -> str:
        """A device token, as if a phone had registered ``app``."""
        return self._thread.call(lambda: self._lab.issue(device, app, environment))

    def uninstall(self, device: str, app: str) -> None:
        self._thread.call(lambda: self._lab.uninstall(device, app))

    def sent(self, token: str | None = None) -> list[dict[str, Any]]:
        return self._thread.call(lambda: [e.to_dict() for e in
                                          self._lab.activity.select(token=token)])

    def fail_next(self, token: str | None, status: int, reason: str | None = None,
                  count: int = 1) -> None:
        self._thread.call(lambda: self._lab.faults.add(status=status, reason=reason,
                                                       token=token, count=count))


@dataclass
class FakeFcm:
    """The FCM look-alike alone: v1, legacy, IID and OAuth, with a trusted service account."""

    url: str
    project_id: str
    send_url: str
    service_account_file: str
    legacy_server_key: str
    _thread: LoopThread
    _lab: Any

    def issue(self, device: str, app: str) -> str:
        return self._thread.call(lambda: self._lab.issue(device, app))

    def uninstall(self, device: str, app: str) -> None:
        self._thread.call(lambda: self._lab.uninstall(device, app))

    def sent(self, token: str | None = None) -> list[dict[str, Any]]:
        return self._thread.call(lambda: [e.to_dict() for e in
                                          self._lab.core.activity.select(token=token)])

    def fail_next(self, token: str | None, status: int, reason: str | None = None,
                  count: int = 1) -> None:
        self._thread.call(lambda: self._lab.faults.add(status=status, reason=reason,
                                                       token=token, count=count))


@pytest.fixture
def fake_apns(tmp_path: Path) -> Iterator[FakeApns]:
    from fake_providers.apns.keys import generate_key, write_key
    from fake_providers.apns.lab import build_lab
    from fake_providers.apns.service import start_apns_service
    from fake_providers.tls import ensure_tls

    key = generate_key()
    p8 = write_key(key, tmp_path / "apns-keys")
    tls = ensure_tls(tmp_path / "tls")
    thread = LoopThread("pushlab-apns")
    lab = thread.call(lambda: build_lab(trusted_keys={key.key_id: key.trusted()},
                                        wall_clock=time.time))
    service = thread.run(start_apns_service(lab, tls=tls))
    try:
        yield FakeApns(service.production.url, service.sandbox.url, "127.0.0.1",
                       service.production.port, service.sandbox.port, service.admin.url,
                       str(tls.ca_path), str(p8), key.key_id, key.team_id, thread, lab)
    finally:
        thread.run(service.close())
        thread.stop()


@pytest.fixture
def fake_fcm(tmp_path: Path) -> Iterator[FakeFcm]:
    from fake_providers.fcm.lab import build_fcm_lab
    from fake_providers.fcm.oauth import write_service_account
    from fake_providers.fcm.server import start_fcm_server

    thread = LoopThread("pushlab-fcm")
    lab = thread.call(lambda: build_fcm_lab(1, wall_clock=time.time))
    server = thread.run(start_fcm_server(lab.core))
    account = tmp_path / "fcm-service-account.json"
    info = write_service_account(account, lab.core.project_id, server.token_uri)
    thread.call(lambda: lab.core.oauth.trust(info))
    project = lab.core.project_id
    try:
        yield FakeFcm(server.url, project, f"{server.url}/v1/projects/{project}/messages:send",
                      str(account), next(iter(lab.core.config.legacy_server_keys)), thread, lab)
    finally:
        thread.run(server.close())
        thread.stop()
