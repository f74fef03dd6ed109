"""The providers' admin APIs: loopback by default, a bearer token anywhere else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from fake_providers.activity import ActivityLog
from fake_providers.admin import admin_app, admin_bind_error, is_loopback, start_admin_server
from fake_providers.apns.lab import build_lab
from fake_providers.apns.service import start_apns_service
from fake_providers.faults import FaultPlan
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.server import start_fcm_server

TOKEN = "lab-admin-token-0123456789"


def test_which_addresses_are_loopback() -> None:
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.168.1.20", "example.org"):
        assert not is_loopback(host), host


def test_off_loopback_needs_a_real_token() -> None:
    assert admin_bind_error("127.0.0.1", None) is None
    assert "--admin-token" in (admin_bind_error("0.0.0.0", None) or "")
    assert admin_bind_error("0.0.0.0", TOKEN) is None
    for weak in ("short", "x" * 15, "with a space in it, long", "non-ascii-token-é-1234"):
        assert "--admin-token" in (admin_bind_error("0.0.0.0", weak) or ""), weak


async def _statuses(url: str, headers: dict[str, str] | None = None) -> list[int]:
    async with httpx.AsyncClient(headers=headers) as client:
        return [(await client.get(f"{url}/admin/health")).status_code,
                (await client.get(f"{url}/admin/faults")).status_code,
                (await client.post(f"{url}/admin/reset")).status_code,
                (await client.post(f"{url}/admin/outage", json={"mode": "drop"})).status_code,
                (await client.get(f"{url}/admin/nowhere")).status_code]


async def test_with_a_token_every_admin_route_wants_it() -> None:
    app = admin_app(ActivityLog(provider="x"), FaultPlan(), lambda: None, token=TOKEN)
    server = await start_admin_server(app)
    try:
        assert await _statuses(server.url) == [401] * 5
        assert await _statuses(server.url, {"Authorization": "Bearer wrong-token-0123456"}) == [
            401] * 5
        assert await _statuses(server.url, {"Authorization": TOKEN}) == [401] * 5
        assert await _statuses(server.url, {"Authorization": f"Bearer {TOKEN}"}) == [
            200, 200, 200, 200, 404]
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{server.url}/admin/health")
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "Bearer" in answer.json()["error"]
    finally:
        await server.close()


async def test_apns_service_refuses_an_open_admin_port_and_guards_a_tokened_one() -> None:
    lab = build_lab(seed=0, clock=time.monotonic, wall_clock=time.time)
    with pytest.raises(ValueError, match="--admin-token"):
        await start_apns_service(lab, h2c=True, admin_host="0.0.0.0")
    service = await start_apns_service(lab, h2c=True, admin_host="0.0.0.0", admin_token=TOKEN)
    try:
        assert service.admin is not None
        url = f"http://127.0.0.1:{service.admin.port}"
        assert await _statuses(url) == [401] * 5
        assert (await _statuses(url, {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
    finally:
        await service.close()


async def test_fcm_admin_routes_want_the_token_and_fcm_routes_do_not() -> None:
    lab = build_fcm_lab(0, project_id="p", wall_clock=time.time)
    server = await start_fcm_server(lab.core, admin_token=TOKEN)
    try:
        assert await _statuses(server.url) == [401] * 5
        async with httpx.AsyncClient() as client:  # FCM's own auth answers, not the admin's
            send = await client.post(f"{server.url}/v1/projects/p/messages:send", json={})
        assert send.status_code == 401 and "admin" not in send.text
        assert (await _statuses(server.url, {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
    finally:
        await server.close()


@pytest.mark.parametrize("argv", [
    ["apns", "--h2c", "--port", "0", "--sandbox-port", "0", "--admin-port", "0",
     "--admin-host", "0.0.0.0"],
    ["fcm", "--host", "0.0.0.0", "--port", "0"],
])
def test_serving_an_admin_api_off_loopback_without_a_token_is_refused(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.cli import app

    monkeypatch.delenv("PUSHLAB_ADMIN_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    results: list[Result] = []
    # in a thread: a server that starts anyway never returns
    runner = threading.Thread(target=lambda: results.append(
        CliRunner().invoke(app, ["serve", *argv])), daemon=True)
    runner.start()
    runner.join(15)
    if not results:
        pytest.fail("the server started with an open admin API")
    result = results[0]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--admin-token" in lines[0], result.stderr


async def test_serve_fcm_with_a_token_says_so_and_wants_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.commands.fcm import serve

    task = asyncio.create_task(serve("0.0.0.0", 0, "p", tmp_path / "sa.json", 0, 600_000, None,
                                     None, TOKEN))
    try:
        for _ in range(200):
            if out := capsys.readouterr().out:
                break
            await asyncio.sleep(0.02)
        info = json.loads(out)
        assert info["admin_auth"] == "bearer token"
        url = f"http://127.0.0.1:{info['fcm'].rsplit(':', 1)[1]}/admin/health"
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
                    ).status_code == 200
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
