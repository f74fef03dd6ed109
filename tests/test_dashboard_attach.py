"""``pushlab dashboard --attach lab.json``: the dashboard on a lab ``pushlab up`` runs,
driven through Textual's Pilot against a real small lab; its bad input is one line."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path

import httpx
import jwt
import pytest
from rich.console import Console
from textual.widgets import DataTable, Input
from typer.testing import CliRunner, Result

from simulator.cli import app as cli
from simulator.dashboard.app import DashboardApp
from simulator.dashboard.attach import AttachEngine, read_lab_file
from simulator.dashboard.screens import SendScreen
from simulator.dashboard.widgets import MessageLife
from simulator.live.lab import Lab, LabConfig

pytestmark = pytest.mark.live

APP = "com.example.chat"


@pytest.fixture
async def lab(tmp_path):
    lab = await Lab(LabConfig(devices=2, workdir=tmp_path / "lab",
                              lab_file=tmp_path / "lab.json")).start()
    await lab.wait_ready(60)
    yield lab
    await lab.close()


async def wait_for(pred, timeout: float = 60.0) -> bool:  # noqa: ANN001
    """True as soon as ``pred()`` holds: the timeout is generous because CI runs four
    live labs at once on two cores, and a passing test never waits for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


async def send_apns(info: dict, token: str, title: str) -> str:
    """What an outside app server does: HTTP/2 to the lab's APNs with a provider token."""
    apns = info["apns"]
    bearer = jwt.encode({"iss": apns["team_id"], "iat": int(time.time())},
                        Path(apns["key_file"]).read_text(), algorithm="ES256",
                        headers={"kid": apns["key_id"]})
    tls = ssl.create_default_context(cafile=info["ca"])
    async with httpx.AsyncClient(http2=True, verify=tls) as client:
        r = await client.post(f"{apns['url']}/3/device/{token}",
                              json={"aps": {"alert": {"title": title}}},
                              headers={"authorization": f"bearer {bearer}",
                                       "apns-topic": APP})
    assert r.status_code == 200, r.text
    return r.headers["apns-id"]


def render(widget: MessageLife) -> str:
    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


async def test_attached_dashboard_shows_the_phones_and_a_messages_hops(lab, tmp_path) -> None:
    info = read_lab_file(tmp_path / "lab.json")
    engine = AttachEngine(info, poll_every=0.2)
    app = DashboardApp(engine, animate=False)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one("#devices-table", DataTable)
        assert await wait_for(lambda: table.row_count == 2), engine.snapshot
        ids = {str(table.get_row_at(i)[0]) for i in range(2)}
        assert ids == {"ios-1", "android-1"}
        assert await wait_for(lambda: engine.collector.counts["connected"] >= 2)

        token = lab.world.devices["ios-1"].apps[APP].token
        apns_id = await send_apns(info, token, "through the lab's APNs")
        assert await wait_for(lambda: any(
            m.msg_id.lower() == apns_id.lower() and "handed" in dict(m.hops)
            for m in engine.snapshot.messages)), engine.snapshot.messages
        view = next(m for m in engine.snapshot.messages if m.msg_id.lower() == apns_id.lower())
        assert view.lane == "apns"
        assert [k for k, _ in view.hops] == ["accepted", "forwarded", "delivered", "handed"]
        life = app.query_one(MessageLife)
        life.msg_id = view.msg_id
        await pilot.pause()
        text = render(life)
        assert "handed" in text and view.msg_id in text, text

        await pilot.press("s")  # and a send through the lab's own app server, from the UI
        await pilot.pause()
        assert isinstance(app.screen, SendScreen)
        app.screen.query_one("#send-to", Input).value = "user-android-1"
        await pilot.click("#send-ok")
        assert await wait_for(lambda: any(e["device"] == "android-1" for e in
                                          lab.inboxes["android-1"].entries))
        assert await wait_for(lambda: any(
            m.lane == "fcm" and [k for k, _ in m.hops][-1:] == ["handed"]
            for m in engine.snapshot.messages)), engine.snapshot.messages


async def test_device_actions_reach_the_lab_and_pause_is_refused(lab, tmp_path) -> None:
    engine = AttachEngine(read_lab_file(tmp_path / "lab.json"), poll_every=0.2)
    app = DashboardApp(engine, animate=False)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 48)) as pilot:
        assert await wait_for(lambda: len(engine.snapshot.rows) == 2)
        app.selected_device = "ios-1"
        await pilot.press("p")  # airplane mode on, through POST /devices/ios-1/actions
        assert await wait_for(lambda: lab.world.devices["ios-1"].airplane)
        assert await wait_for(lambda: any(r.device_id == "ios-1" and r.interface == "airplane"
                                          for r in engine.snapshot.rows))
        await pilot.press("p")  # and off again: the toggle reads the phone's state
        assert await wait_for(lambda: not lab.world.devices["ios-1"].airplane)
        await pilot.press("space")
        await pilot.pause()
        assert not engine.snapshot.paused


async def test_a_lab_that_stops_is_shown_as_gone(tmp_path) -> None:
    lab = await Lab(LabConfig(devices=1, android=0.0, workdir=tmp_path / "lab",
                              lab_file=tmp_path / "lab.json")).start()
    engine = AttachEngine(read_lab_file(tmp_path / "lab.json"), poll_every=0.2)
    engine.start()
    try:
        assert await wait_for(lambda: engine.snapshot.devices_total == 1)
        await lab.close()
        assert await wait_for(lambda: engine.snapshot.error is not None)
        assert lab.info["control_url"] in engine.snapshot.error
    finally:
        await asyncio.to_thread(engine.stop)
        await lab.close()


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["dashboard", *args])


@pytest.mark.parametrize("content, says", [
    (None, "no such file"), ("{not json", "not JSON"),
    ('{"apns": {}}', "control_url: missing"),
    ('{"control_url": "http://127.0.0.1:9"}', "http://127.0.0.1:9 (from "),
])
def test_bad_lab_file_or_a_lab_not_running_is_one_line_and_exit_2(tmp_path, content,
                                                                   says) -> None:
    path = tmp_path / "lab.json"
    if content is not None:
        path.write_text(content)
    done = _run("--attach", str(path))
    assert done.exit_code == 2, done.output
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line, line
    assert str(path) in line, line


def test_attach_with_a_scenario_file_is_refused(tmp_path) -> None:
    path = tmp_path / "lab.json"
    path.write_text(json.dumps({"control_url": "http://127.0.0.1:9"}))
    done = _run("scenarios/hello.yaml", "--attach", str(path))
    assert done.exit_code == 2 and "--attach" in done.stderr, done.output


PHONE = {"id": "ios-1", "platform": "ios", "user": "user-ios-1", "connection": "connected",
         "powered": True, "airplane": False, "dozing": False, "offline": False,
         "interface": "wifi", "interfaces": ["wifi", "lte"], "address": "127.1.0.1",
         "radio": "idle", "battery": {"level_pct": 99.5, "used_j": 1.0}, "pending": 2,
         "delivered": 3, "apps": {APP: {"token": "t"}}}


def test_a_phone_of_get_devices_as_a_row_and_its_toggles_as_requests() -> None:
    from simulator.dashboard.attach import _device_request, device_row

    row = device_row(PHONE)
    assert (row.interface, row.address, row.pending, row.delivered, row.apps) == (
        "wifi", "127.1.0.1", 2, 3, (APP,))
    assert device_row({**PHONE, "airplane": True}).interface == "airplane"
    assert _device_request(PHONE, "switch_network", {}) == ("switch_network",
                                                            {"network": "lte"})
    assert _device_request({**PHONE, "interface": "lte"}, "switch_network", {})[1] == {
        "network": "wifi"}
    assert _device_request(PHONE, "airplane", {}) == ("airplane", {"on": True})
    assert _device_request({**PHONE, "offline": True}, "offline", {}) == ("online", {})
    assert _device_request(PHONE, "uninstall", {}) == ("uninstall", {"app": APP})
