"""``pushlab up`` and ``pushlab device``: the live lab, its control API, registrations with
an app server that is down or failing, lab files, ports, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from simulator.live.lab import Lab, LabConfig

pytestmark = pytest.mark.live

APP = "com.example.chat"
PUSHLAB = [sys.executable, "-m", "simulator"]


@pytest.fixture
async def lab(tmp_path):
    lab = await Lab(LabConfig(devices=2, workdir=tmp_path / "lab")).start()
    await lab.wait_ready(20)
    yield lab
    await lab.close()


async def test_lab_json_and_builtin_app_server_delivery_on_the_stream(lab, tmp_path) -> None:
    info = json.loads((tmp_path / "lab" / "lab.json").read_text())
    assert Path(info["apns"]["key_file"]).read_text().startswith("-----BEGIN PRIVATE KEY")
    assert json.loads(Path(info["fcm"]["service_account_file"]).read_text())["token_uri"] \
        == info["fcm"]["token_uri"]
    assert {d["platform"] for d in info["devices"]} == {"ios", "android"}
    env = (tmp_path / "lab" / "lab.env").read_text()
    assert f"PUSHLAB_APNS_KEY_ID={info['apns']['key_id']}" in env
    control = info["control_url"]
    async with httpx.AsyncClient(base_url=control, timeout=10) as c:
        devices = (await c.get("/devices")).json()
        assert devices["counts"]["connected"] == 2 and devices["counts"]["registered"] == 2
        assert (await c.get("/openapi.json")).json()["openapi"].startswith("3.")
        async with c.stream("GET", "/events", params={"device": "android-1"}) as stream:
            r = await c.post(info["app_server"]["url"] + "/v1/send/user/user-android-1",
                             json={"title": "hello", "body": "b"},
                             headers={"X-API-Key": info["app_server"]["api_key"]})
            assert r.status_code == 200, r.text
            lines = stream.aiter_lines()
            line = await asyncio.wait_for(_data_line(lines), 10)
        entry = json.loads(line)
        assert entry["device"] == "android-1" and entry["provider"] == "fcm"
        assert entry["hops"]["handed"] >= entry["hops"]["accepted"]
        inbox = (await c.get("/devices/android-1/inbox", params={"since": 0})).json()
        assert [e["msg_id"] for e in inbox["entries"]] == [entry["msg_id"]]
        later = (await c.get("/devices/android-1/inbox", params={"since": entry["seq"]})).json()
        assert later["entries"] == []


async def _data_line(lines) -> str:
    async for line in lines:
        if line.startswith("data: "):
            return line[6:]
    raise AssertionError("stream ended")


BAD_REQUESTS = [
    ("GET", "/devices/nope", None, 404),
    ("GET", "/devices/ios-1/inbox?since=x", None, 400),
    ("POST", "/devices/ios-1/actions/explode", {}, 404),
    ("POST", "/devices/ios-1/actions/switch_network", {"network": "moon"}, 400),
    ("POST", "/devices/ios-1/actions/uninstall", {}, 400),
    ("POST", "/devices/ios-1/actions/offline", "not json", 400),
    ("POST", "/devices/ios-1/actions/offline", [1], 400),
    ("POST", "/providers/apns/faults", {"status": 200}, 400),
    ("POST", "/providers/mail/faults", {"status": 500}, 404),
    ("POST", "/devices", {"platform": "symbian"}, 400),
    ("DELETE", "/devices", None, 405),
]


async def test_bad_requests_get_4xx_json(lab) -> None:
    async with httpx.AsyncClient(base_url=lab.info["control_url"]) as c:
        for method, path, body, status in BAD_REQUESTS:
            content = body if isinstance(body, str) else None
            r = await c.request(method, path, json=None if content else body, content=content)
            assert (r.status_code, bool(r.json()["error"])) == (status, True), (method, path)


async def test_actions_change_the_phone(lab) -> None:
    async with httpx.AsyncClient(base_url=lab.info["control_url"]) as c:
        r = await c.post("/devices/ios-1/actions/offline")
        assert r.json()["status"]["connected"] is False
        await c.post("/devices/ios-1/actions/online")
        before = lab.world.devices["ios-1"].apps[APP].token
        for name in ("change_address", "nat_drop", "reboot"):
            assert (await c.post(f"/devices/ios-1/actions/{name}")).status_code == 200
        await c.post("/devices/ios-1/actions/uninstall", json={"app": APP})
        assert APP not in (await c.get("/devices/ios-1")).json()["apps"]
        await c.post("/devices/ios-1/actions/install", json={"app": APP})
        # five disruptions in a row: a handshake lost on a loaded machine is retried
        # after the daemon's 30 s connect timeout, so the phone must be back within it
        await lab.wait_ready(40)
        assert lab.world.devices["ios-1"].apps[APP].token != before  # a reinstall's new token


class FlakyServer:
    """An app server that answers 500 until told to work."""

    def __init__(self) -> None:
        self.working = False
        self.bodies: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        if not self.working:
            return web.json_response({"error": "down"}, status=500)
        self.bodies.append(await request.json())
        return web.json_response({})


async def _serve(handler, port: int = 0) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/register", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def test_registration_retries_a_failing_then_down_server_and_resends_new_tokens(
        tmp_path) -> None:
    flaky = FlakyServer()
    runner, port = await _serve(flaky.handle)
    template = {"deviceId": "{device}", "pushToken": "{token}", "meta": {"os": "{platform}"}}
    lab = await Lab(LabConfig(devices=1, android=1.0, app_server="none",
                              register_url=f"http://127.0.0.1:{port}/register",
                              register_template=template, workdir=tmp_path / "lab")).start()
    try:
        await lab.wait_ready(10, registered=False)
        await asyncio.sleep(0.3)
        status = lab.device_status("android-1")["apps"][APP]["registration"]
        assert status["state"] == "failing" and status["error"] == "HTTP 500"
        await runner.cleanup()  # now down altogether: connection refused
        await asyncio.sleep(0.6)
        status = lab.device_status("android-1")["apps"][APP]["registration"]
        assert status["state"] == "failing" and "HTTP 500" not in status["error"]
        assert lab.device_status("android-1")["connected"]  # the lab carries on
        flaky.working = True
        runner, _ = await _serve(flaky.handle, port)
        await lab.wait_ready(10)
        token = lab.world.devices["android-1"].apps[APP].token
        assert flaky.bodies[-1] == {"deviceId": "android-1", "pushToken": token,
                                    "meta": {"os": "android"}}
        await lab.act("android-1", "uninstall", {"app": APP})
        await lab.act("android-1", "install", {"app": APP})
        await lab.wait_ready(10)
        assert flaky.bodies[-1]["pushToken"] != token  # the new token, sent again
    finally:
        await lab.close()
        await runner.cleanup()


def _cli(*args: str):
    from typer.testing import CliRunner

    from simulator.cli import app

    return CliRunner().invoke(app, list(args))


def _start_up(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*PUSHLAB, "up", "--lab-file", str(tmp_path / "lab.json"),
                             "--workdir", str(tmp_path / "work"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.getcwd()})


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("no lab.json")


def test_up_then_device_prints_a_notification_then_sigterm_stops_cleanly(tmp_path) -> None:
    proc = _start_up(tmp_path, "--devices", "1", "--android", "0")
    try:
        info = _wait_for(tmp_path / "lab.json", proc)
        watcher = subprocess.Popen([*PUSHLAB, "device", "--lab", str(tmp_path / "lab.json"),
                                    "--platform", "ios", "--count", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        new = None
        while new is None and time.monotonic() < deadline:
            devices = httpx.get(info["control_url"] + "/devices").json()["devices"]
            new = next((d for d in devices if d["id"] != "ios-1"
                        and d["apps"][APP]["registration"]
                        and d["apps"][APP]["registration"]["state"] == "registered"), None)
            time.sleep(0.1)
        assert new is not None, watcher.stderr
        r = httpx.post(info["app_server"]["url"] + f"/v1/send/user/{new['user']}",
                       json={"title": "for the watcher"},
                       headers={"X-API-Key": info["app_server"]["api_key"]})
        assert r.status_code == 200
        out, err = watcher.communicate(timeout=20)
        assert watcher.returncode == 0, err
        assert json.loads(out)["payload"]["aps"]["alert"]["title"] == "for the watcher"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "ready in" in out and out.rstrip().endswith("stopped")
    assert "Traceback" not in err


def _free_run(length: int) -> int:
    """A base port below the ephemeral range with ``length`` free ports from it."""
    import random

    for _ in range(50):
        base = random.randrange(20_000, 30_000)
        try:
            for port in range(base, base + length):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    pytest.skip("no run of free ports")


def test_a_taken_port_names_it_and_how_to_choose_another(tmp_path) -> None:
    base = _free_run(7)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))  # the FCM port of this base
        taken.listen()
        result = _cli("up", "--port-base", str(base), "--lab-file", str(tmp_path / "lab.json"),
                      "--workdir", str(tmp_path / "work"))
    assert result.exit_code == 2
    err = result.stderr
    assert f"127.0.0.1:{base + 3} is in use" in err and "fcm port" in err
    assert "choose another with --port-base P" in err and not (tmp_path / "lab.json").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("devices: 2\nregister:\n  url: ftp://x\n", "lab.yaml:3: register.url: an http://"),
    ("devices: 2\nregister:\n  body: {a: '{nope}'}\n", "lab.yaml:3: register.body: unknown"),
    ("apps: [a]\ndevices: -1\n", "lab.yaml:2: devices: Input should be greater"),
    ("devicez: 2\n", "lab.yaml:1: devicez: Extra inputs"),
    ("devices: [\n", "lab.yaml:2: not valid YAML"),
    ("- 1\n", "lab.yaml:1: a mapping of settings"),
])
def test_a_malformed_lab_file_names_file_line_and_field(tmp_path, text, expected) -> None:
    from simulator.live.lab_file import LabFileError, read_lab_file

    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(LabFileError) as err:
        read_lab_file(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


def test_up_with_a_malformed_lab_file_is_one_line_and_exit_2(tmp_path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("devices: 2\nregister:\n  url: ftp://x\n")
    result = _cli("up", "--config", str(path), "--workdir", str(tmp_path / "work"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {path}:3: register.url: an http:// or https:// URL"


def test_bench_up_json_reports_ready_time_and_latency() -> None:
    run = _cli("bench", "up", "--devices", "4", "--count", "20", "--rate", "50", "--json")
    assert run.exit_code == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4 and result["sent"] == 20 and result["delivered"] == 20
    assert result["time_to_ready_s"] > 0
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]


def test_up_refuses_a_register_url_that_is_not_http(tmp_path) -> None:
    result = _cli("up", "--register-url", "ftp://example", "--workdir", str(tmp_path / "w"))
    assert result.exit_code == 2 and "--register-url" in result.stderr


def _wait_registered(control: str, proc: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(control + "/devices").json()["counts"]["registered"] == n:
                return
        time.sleep(0.1)
    raise AssertionError("phones not registered")


async def _burst(info: dict, users: list[str], each: int) -> list[dict]:
    """``each`` sends to every user at once; the provider's answers."""
    headers = {"X-API-Key": info["app_server"]["api_key"]}
    url = info["app_server"]["url"] + "/v1/send/user/"
    async with httpx.AsyncClient(timeout=20, headers=headers) as c:
        replies = await asyncio.gather(*(c.post(url + user, json={"title": f"m{i}"})
                                         for user in users for i in range(each)))
    return [r for reply in replies for r in reply.json()["results"]]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_mid_delivery_accounts_for_every_accepted_message(tmp_path, sig) -> None:
    """Each message a provider accepted was acked by its phone or is listed, when the
    lab stops, as still in that provider's store."""
    proc = _start_up(tmp_path, "--devices", "2")
    try:
        info = _wait_for(tmp_path / "lab.json", proc, 60.0)  # a busy machine starts slowly
        _wait_registered(info["control_url"], proc, 2)
        httpx.post(info["control_url"] + "/devices/android-1/actions/offline")
        results = asyncio.run(_burst(info, ["user-ios-1", "user-android-1"], 15))
        proc.send_signal(sig)  # while the iOS phone's deliveries are on their way
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out.rstrip().endswith("stopped")
    accepted = [r for r in results if r["status"] == 200]
    assert len(accepted) == 30
    stopped = json.loads((tmp_path / "lab.json").read_text())["stopped"]
    held = stopped["messages"]
    otherwise = sum(n for fates in stopped["settled_otherwise"].values() for n in fates.values())
    assert sum(stopped["acked"].values()) + otherwise + len(held) == len(accepted)
    # the offline phone's are all still there, or (the provider's rules) collapsed
    assert sum(m["device"] == "android-1" for m in held) + otherwise_for(stopped, "fcm") == 15
    ids = {r["provider_msg_id"] or r["msg_id"] for r in accepted}  # APNs: the apns-id sent
    assert all(any(i and i.endswith(m["msg_id"]) for i in ids) for m in held)
    assert "still in the providers' stores" in out


def otherwise_for(stopped: dict, provider: str) -> int:
    return sum(stopped["settled_otherwise"][provider].values())


async def test_the_embedded_broker_in_its_own_process_starts_restarts_and_stops() -> None:
    from simulator.live.broker_child import EmbeddedBrokerProcess

    broker = EmbeddedBrokerProcess()
    await broker.start()
    try:
        port = broker.port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await broker.restart()
        assert broker.port == port and broker.running  # the same URL after a restart
    finally:
        await broker.stop()
    assert not broker.running
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
