"""The FCM look-alike over real sockets on loopback: raw HTTP, google-auth, firebase-admin, pyfcm."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from pathlib import Path

import httpx
import pytest

from fake_providers.fcm.core import FcmConfig
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.oauth import write_service_account
from fake_providers.fcm.server import start_fcm_server

pytestmark = pytest.mark.live

PROJECT = "pushlab-demo"
SEND = f"/v1/projects/{PROJECT}/messages:send"


@pytest.fixture
async def lab_server(tmp_path: Path):
    lab = build_fcm_lab(3, project_id=PROJECT, wall_clock=time.time,
                        config=FcmConfig(quota_per_minute=100_000))
    server = await start_fcm_server(lab.core)
    sa = tmp_path / "sa.json"
    lab.core.oauth.trust(write_service_account(sa, PROJECT, server.token_uri))
    try:
        yield lab, server, sa
    finally:
        await server.close()


def _error(resp: httpx.Response) -> tuple[int, str, str | None]:
    err = resp.json()["error"]
    code = next((d["errorCode"] for d in err.get("details", [])
                 if d["@type"].endswith("FcmError")), None)
    return resp.status_code, err["status"], code


async def test_raw_http_every_error_path(lab_server) -> None:
    lab, server, _ = lab_server
    token = lab.issue("dev1", "com.example.app")
    bearer = {"authorization": f"Bearer {lab.core.bearer_for_tests()}"}
    async with httpx.AsyncClient(base_url=server.url) as c:
        ok = await c.post(SEND, json={"message": {"token": token, "data": {"a": "b"}}},
                          headers=bearer)
        assert ok.status_code == 200 and ok.json()["name"].startswith(
            f"projects/{PROJECT}/messages/0:")
        cases = [
            ({}, {"message": {"token": token}}, (401, "UNAUTHENTICATED", None)),
            ({"authorization": "Bearer expired-or-forged"}, {"message": {"token": token}},
             (401, "UNAUTHENTICATED", None)),
            (bearer, {"message": {"token": token, "data": {"a": 1}}},
             (400, "INVALID_ARGUMENT", None)),
            (bearer, {"message": {"token": token, "bogus": 1}}, (400, "INVALID_ARGUMENT", None)),
            (bearer, {"message": {"token": token, "topic": "t"}},
             (400, "INVALID_ARGUMENT", None)),
            (bearer, {"message": {"token": "x" * 40}},
             (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
            (bearer, {"message": {"token": token, "android": {"ttl": "9999999s"}}},
             (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
        ]
        for headers, body, expected in cases:
            resp = await c.post(SEND, json=body, headers=headers)
            assert _error(resp) == expected, (body, resp.text)
        bad_json = await c.post(SEND, content=b'{"message": {', headers=bearer)
        assert _error(bad_json) == (400, "INVALID_ARGUMENT", None)
        other = await c.post("/v1/projects/other/messages:send",
                             json={"message": {"token": token}}, headers=bearer)
        assert _error(other)[:2] == (403, "PERMISSION_DENIED")
        lab.core.assign_app("com.other", "elsewhere")
        foreign = lab.issue("dev9", "com.other")
        resp = await c.post(SEND, json={"message": {"token": foreign}}, headers=bearer)
        assert _error(resp) == (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")
        lab.uninstall("dev1", "com.example.app")
        resp = await c.post(SEND, json={"message": {"token": token}}, headers=bearer)
        assert _error(resp) == (404, "NOT_FOUND", "UNREGISTERED")
        fresh = lab.issue("dev2", "com.example.app")
        # faults through the admin API
        r = await c.post("/admin/faults", json={"token": fresh, "status": 500,
                                                "reason": "INTERNAL"})
        assert r.status_code == 200
        resp = await c.post(SEND, json={"message": {"token": fresh}}, headers=bearer)
        assert _error(resp) == (500, "INTERNAL", "INTERNAL")
        await c.delete("/admin/faults")
        await c.post("/admin/outage", json={"mode": "unavailable"})
        resp = await c.post(SEND, json={"message": {"token": fresh}}, headers=bearer)
        assert _error(resp) == (503, "UNAVAILABLE", "UNAVAILABLE")
        assert resp.headers["retry-after"] == "30"
        await c.post("/admin/outage", json={"mode": None})
        lab.core.quota = type(lab.core.quota)(1, 60.0, lab.backend.clock)
        await c.post(SEND, json={"message": {"token": fresh}}, headers=bearer)
        resp = await c.post(SEND, json={"message": {"token": fresh}}, headers=bearer)
        assert _error(resp) == (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
        assert int(resp.headers["retry-after"]) >= 1
        activity = (await c.get("/admin/activity", params={"outcome": "rejected"})).json()
        assert activity["summary"]["rejected"] >= 10
        assert all(e["headers"].get("authorization") in (None, "<redacted>")
                   for e in activity["entries"])
        assert (await c.post("/admin/reset")).status_code == 200
        assert (await c.get("/admin/activity")).json()["summary"]["accepted"] == 0
        nowhere = await c.get("/v1/nothing")
        assert nowhere.status_code == 404


async def test_outage_shutdown_closes_and_drop_cuts(lab_server) -> None:
    lab, server, _ = lab_server
    token = lab.issue("dev1", "com.example.app")
    bearer = {"authorization": f"Bearer {lab.core.bearer_for_tests()}"}
    lab.faults.set_outage("shutdown")
    async with httpx.AsyncClient(base_url=server.url) as c:
        resp = await c.post(SEND, json={"message": {"token": token}}, headers=bearer)
        assert resp.status_code == 503 and resp.headers.get("connection") == "close"
        lab.faults.set_outage("drop")
        with pytest.raises(httpx.TransportError):
            await c.post(SEND, json={"message": {"token": token}}, headers=bearer)
        lab.faults.set_outage(None)
        lab.faults.set_latency(0.05)
        t0 = asyncio.get_running_loop().time()
        resp = await c.post(SEND, json={"message": {"token": token}}, headers=bearer)
        assert resp.status_code == 200
        assert asyncio.get_running_loop().time() - t0 >= 0.05


async def test_legacy_and_iid_over_http(lab_server) -> None:
    lab, server, _ = lab_server
    token = lab.issue("dev1", "com.example.app")
    key = next(iter(lab.core.config.legacy_server_keys))
    async with httpx.AsyncClient(base_url=server.url) as c:
        resp = await c.post("/fcm/send", json={"registration_ids": [token, "nope" * 5]},
                            headers={"authorization": f"key={key}"})
        body = resp.json()
        assert resp.status_code == 200 and (body["success"], body["failure"]) == (1, 1)
        assert body["results"][1] == {"error": "InvalidRegistration"}
        assert (await c.post("/fcm/send", json={"to": token},
                             headers={"authorization": "key=wrong"})).status_code == 401
        bad = await c.post("/fcm/send", content=b"{", headers={
            "authorization": f"key={key}", "content-type": "application/json"})
        assert bad.status_code == 400 and bad.text.startswith("JSON_PARSING_ERROR")
        headers = {"authorization": f"Bearer {lab.core.bearer_for_tests()}",
                   "access_token_auth": "true"}
        resp = await c.post("/iid/v1:batchAdd", json={"to": "/topics/news",
                                                      "registration_tokens": [token]},
                            headers=headers)
        assert resp.json() == {"results": [{}]}
        info = await c.get(f"/iid/info/{token}", headers=headers)
        assert "news" in info.json()["rel"]["topics"]
        resp = await c.post("/iid/v1:batchRemove", json={"to": "/topics/news",
                                                         "registration_tokens": [token]},
                            headers=headers)
        assert resp.json() == {"results": [{}]}
        assert (await c.get("/admin/topics")).json() == {}


async def test_admin_token_routes(lab_server) -> None:
    lab, server, _ = lab_server
    async with httpx.AsyncClient(base_url=server.url) as c:
        issued = (await c.post("/admin/tokens", json={"device_id": "d", "app_id": "a"})).json()
        token = issued["token"]
        refreshed = (await c.post(f"/admin/tokens/{token}/refresh")).json()
        assert refreshed["token"] != token
        aged = await c.post(f"/admin/tokens/{refreshed['token']}/age", json={"days": 271})
        assert aged.status_code == 200
        bearer = {"authorization": f"Bearer {lab.core.bearer_for_tests()}"}
        resp = await c.post(SEND, json={"message": {"token": refreshed["token"]}},
                            headers=bearer)
        assert _error(resp)[2] == "UNREGISTERED"
        assert (await c.delete(f"/admin/tokens/{token}")).status_code == 200
        assert (await c.post("/admin/tokens", json={})).status_code == 400

        fresh = (await c.post("/admin/tokens", json={"device_id": "e", "app_id": "a"})).json()
        sent = await c.post(SEND, json={"message": {"token": fresh["token"],
                                                    "data": {"k": "v"}}}, headers=bearer)
        assert sent.status_code == 200  # device e is offline: FCM keeps it
        held = (await c.get("/admin/store")).json()
        assert held["total"] == 1
        assert [m["forwarded"] for m in held["devices"]["e"]] == [False]


async def test_google_auth_service_account_gets_a_token_from_the_lab(lab_server) -> None:
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    lab, server, sa = lab_server
    token = lab.issue("dev1", "com.example.app")

    def run() -> tuple[int, str]:
        creds = service_account.Credentials.from_service_account_file(
            str(sa), scopes=["https://www.googleapis.com/auth/firebase.messaging"])
        creds.refresh(Request())
        resp = httpx.post(server.url + SEND, headers={
            "authorization": f"Bearer {creds.token}"},
            json={"message": {"token": token, "data": {"via": "google-auth"}}})
        return resp.status_code, creds.token

    status, bearer = await asyncio.to_thread(run)
    assert status == 200 and bearer.startswith("ya29.")
    assert lab.core.oauth.issued >= 1


async def test_firebase_admin_unmodified_but_endpoint(lab_server, monkeypatch) -> None:
    import firebase_admin
    from firebase_admin import credentials, exceptions, messaging

    lab, server, sa = lab_server
    token = lab.issue("dev1", "com.example.app")
    other = lab.issue("dev2", "com.example.app")
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL",
                        server.url + "/v1/projects/{0}/messages:send")
    monkeypatch.setattr(messaging._MessagingService, "IID_URL", server.url)

    def run() -> dict:
        app = firebase_admin.initialize_app(credentials.Certificate(str(sa)), name="pushlab")
        out: dict = {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                out["sent"] = messaging.send(messaging.Message(
                    token=token, data={"a": "b"},
                    android=messaging.AndroidConfig(ttl=60, priority="high",
                                                    collapse_key="score")), app=app)
                out["dry"] = messaging.send(messaging.Message(
                    token=token, notification=messaging.Notification(title="t", body="b")),
                    dry_run=True, app=app)
                try:
                    messaging.send(messaging.Message(token="x" * 40), app=app)
                except exceptions.InvalidArgumentError as exc:
                    out["invalid"] = str(exc)
                subscribe = getattr(messaging, "subscribe_to_topic_legacy",
                                    messaging.subscribe_to_topic)  # 7.x: IID is "legacy"
                r = subscribe([token, other, "y" * 30], "news", app=app)
                out["subscribed"] = (r.success_count, [e.reason for e in r.errors])
                out["topic"] = messaging.send(messaging.Message(topic="news", data={"x": "1"}),
                                              app=app)
                lab.uninstall("dev2", "com.example.app")
                try:
                    messaging.send(messaging.Message(token=other), app=app)
                except messaging.UnregisteredError as exc:
                    out["unregistered"] = str(exc)
                batch = messaging.send_each([messaging.Message(token=token),
                                             messaging.Message(token=other)], app=app)
                out["batch"] = (batch.success_count, batch.failure_count)
        finally:
            firebase_admin.delete_app(app)
        return out

    out = await asyncio.to_thread(run)
    assert out["sent"].startswith(f"projects/{PROJECT}/messages/0:")
    assert out["dry"] == f"projects/{PROJECT}/messages/fake_message_id"
    assert "not a valid FCM registration token" in out["invalid"]
    assert out["subscribed"] == (2, ["INVALID_ARGUMENT"])
    assert out["topic"].startswith(f"projects/{PROJECT}/messages/")
    assert "unregistered" in out and out["batch"] == (1, 1)
    # the topic send reached both subscribers' queues (dev2 before its uninstall)
    assert lab.backend.store.pending("dev1")


async def test_pyfcm_with_service_account_file(lab_server) -> None:
    from pyfcm import FCMNotification

    lab, server, sa = lab_server
    token = lab.issue("dev1", "com.example.app")

    def run() -> dict:
        fcm = FCMNotification(service_account_file=str(sa), project_id=PROJECT)
        fcm._fcm_end_point = server.url + SEND  # the endpoint is the only change
        return fcm.notify(fcm_token=token, notification_title="Hi", notification_body="there",
                          data_payload={"k": "v"})

    result = await asyncio.to_thread(run)
    assert result["name"].startswith(f"projects/{PROJECT}/messages/")
    pending = lab.backend.store.pending("dev1")
    assert pending and pending[-1].payload["notification"]["title"] == "Hi"


async def test_service_account_file_shape(tmp_path: Path) -> None:
    info = json.loads(json.dumps(write_service_account(tmp_path / "x.json", "p",
                                                       "http://127.0.0.1:1/token")))
    assert info["type"] == "service_account" and info["token_uri"].endswith("/token")
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o600
