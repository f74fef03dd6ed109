"""The provider-neutral admin API, fault plan and activity log, and the APNs service around them."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest
from typer.testing import CliRunner

from fake_providers.activity import ActivityLog
from fake_providers.admin import admin_app, start_admin_server
from fake_providers.apns.keys import load_trusted_keys
from fake_providers.apns.lab import build_lab
from fake_providers.apns.service import start_apns_service
from fake_providers.faults import FaultError, FaultPlan
from fake_providers.tls import ensure_tls

APP = "com.example.chat"
ALERT = {"aps": {"alert": "hi"}}


# --- FaultPlan and ActivityLog alone ------------------------------------------------------
def test_fault_plan_rules_in_order_and_counts():
    plan = FaultPlan()
    plan.fail_next(2, 503, "ServiceUnavailable")
    plan.fail_token("abc*", 410, "Unregistered")
    assert plan.check("abcdef").reason == "ServiceUnavailable"
    assert plan.check("zzz").reason == "ServiceUnavailable"
    assert plan.check("zzz") is None  # the next-2 rule is spent and gone
    assert plan.check("abcdef").status == 410
    assert plan.check("abX") is None


def test_fault_plan_from_a_scenario_mapping_and_errors():
    plan = FaultPlan.from_dict({"latency": 0.05, "outage": "unavailable",
                                "rules": [{"token": "t1", "status": 400,
                                           "reason": "BadDeviceToken"}]})
    assert plan.latency == 0.05 and plan.outage == "unavailable" and len(plan.rules) == 1
    for bad in ({"outage": "melt"}, {"rules": [{"status": 999}]}, {"latency": "x"},
                {"rules": [{"bogus": 1}]}, {"rules": "no"}, {"rules": [{"count": 0,
                                                                       "status": 500}]}):
        with pytest.raises(FaultError):
            FaultPlan().update(bad)
    single = FaultPlan()
    single.update({"status": 500, "reason": "InternalServerError", "count": 1})
    assert single.rules[0].count == 1


def test_activity_log_is_bounded_and_filters():
    log = ActivityLog(limit=3, provider="x")
    for i in range(5):
        log.record(float(i), i % 2 == 0, 200 if i % 2 == 0 else 400, None, "POST", "/p",
                   f"t{i}", str(i), [("a", "b")], b"{}")
    assert len(log) == 3 and log.summary() == {"accepted": 3, "rejected": 2, "kept": 3}
    assert [e.token for e in log.accepted] == ["t2", "t4"]
    assert log.select(token="t3")[0].status == 400


# --- the admin API over HTTP ------------------------------------------------------------
@pytest.fixture
async def admin():
    activity, faults = ActivityLog(provider="fcm"), FaultPlan()
    resets = []
    server = await start_admin_server(admin_app(activity, faults, lambda: resets.append(1)))
    yield server, activity, faults, resets
    await server.close()


async def test_admin_roundtrip(admin):
    server, activity, faults, resets = admin
    activity.record(1.0, False, 400, "INVALID_ARGUMENT", "POST", "/v1/x", "tok", "m1",
                    [("content-type", "application/json")], b'{"message": {}}')
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await c.get("/admin/health")).json()["ok"] is True
        act = (await c.get("/admin/activity", params={"outcome": "rejected"})).json()
        assert act["entries"][0]["reason"] == "INVALID_ARGUMENT"
        assert act["entries"][0]["payload"] == {"message": {}}
        r = await c.post("/admin/faults", json={"token": "tok", "status": 404,
                                                "reason": "UNREGISTERED"})
        assert r.status_code == 200 and faults.rules[0].reason == "UNREGISTERED"
        rule_id = r.json()["added"][0]["id"]
        assert (await c.post("/admin/outage", json={"mode": "drop"})).json() == {"outage": "drop"}
        assert (await c.post("/admin/latency", json={"seconds": 0.5})).json()["latency"] == 0.5
        got = (await c.get("/admin/faults")).json()
        assert got["outage"] == "drop" and got["latency"] == 0.5
        assert (await c.delete(f"/admin/faults/{rule_id}")).status_code == 200
        assert (await c.delete("/admin/faults/999")).status_code == 404
        for bad in [("/admin/faults", b"{nope"), ("/admin/faults", b'{"status": 42}'),
                    ("/admin/outage", b'{"mode": "melt"}'), ("/admin/outage", b"[]"),
                    ("/admin/latency", b'{"seconds": -1}')]:
            r = await c.post(bad[0], content=bad[1])
            assert r.status_code == 400 and "error" in r.json(), bad
        assert (await c.get("/admin/activity", params={"limit": "x"})).status_code == 400
        assert (await c.post("/admin/reset")).json() == {"ok": True}
    assert resets == [1] and len(activity) == 0 and faults.outage is None


# --- the whole APNs service -------------------------------------------------------------
async def test_service_admin_controls_the_wire(tmp_path):
    tls = ensure_tls(tmp_path / "tls")
    lab = build_lab(wall_clock=time.time)
    service = await start_apns_service(lab, tls=tls)
    ctx = ssl.create_default_context(cafile=str(tls.ca_path))
    try:
        async with httpx.AsyncClient(base_url=service.admin.url) as admin, \
                httpx.AsyncClient(http2=True, verify=ctx) as apns:
            token = (await admin.post("/admin/tokens", json={"app": APP})).json()["token"]
            url = f"{service.production.url}/3/device/{token}"
            h = {"apns-topic": APP}
            assert (await apns.post(url, json=ALERT, headers=h)).status_code == 200
            await admin.post("/admin/faults", json={"token": token, "status": 410,
                                                    "reason": "Unregistered", "count": 1})
            r = await apns.post(url, json=ALERT, headers=h)
            assert r.status_code == 410 and "timestamp" in r.json()
            await admin.post("/admin/latency", json={"seconds": 0.2})
            t = time.monotonic()
            assert (await apns.post(url, json=ALERT, headers=h)).status_code == 200
            assert time.monotonic() - t >= 0.2
            await admin.post("/admin/latency", json={"seconds": 0})
            await admin.post("/admin/outage", json={"mode": "unavailable"})
            r = await apns.post(url, json=ALERT, headers=h)
            assert (r.status_code, r.json()["reason"]) == (503, "ServiceUnavailable")
            await admin.post("/admin/outage", json={"mode": "shutdown"})
            r = await apns.post(url, json=ALERT, headers=h)
            assert (r.status_code, r.json()["reason"]) == (503, "Shutdown")
            await admin.post("/admin/outage", json={"mode": "drop"})
            with pytest.raises(httpx.TransportError):
                await apns.post(url, json=ALERT, headers=h)
            await admin.post("/admin/outage", json={"mode": None})
            assert (await apns.post(url, json=ALERT, headers=h)).status_code == 200
            act = (await admin.get("/admin/activity")).json()
            assert act["summary"]["accepted"] == 3
            assert (await admin.get("/admin/store")).json()["total"] == 1
            assert (await admin.delete(f"/admin/tokens/{token}")).json()["active"] is False
            r = await apns.post(url, json=ALERT, headers=h)
            assert (r.status_code, r.json()["reason"]) == (410, "Unregistered")
    finally:
        await service.close()
    await asyncio.sleep(0)


def test_keygen_writes_a_key_the_lab_trusts(tmp_path):
    from simulator.cli import app

    result = CliRunner().invoke(app, ["apns", "keygen", "--dir", str(tmp_path), "--team", "ABCDE12345"])
    assert result.exit_code == 0, result.output
    keys = load_trusted_keys(tmp_path)
    (kid, key), = keys.items()
    assert key.team_id == "ABCDE12345" and len(kid) == 10
    assert f"key_id:  {kid}" in result.output
    assert (tmp_path / f"AuthKey_{kid}.p8").read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    bad = CliRunner().invoke(app, ["apns", "keygen", "--dir", str(tmp_path), "--team", "x"])
    assert bad.exit_code != 0
