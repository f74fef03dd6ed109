"""The pytest plugin as a user of it would write: an app server of the test's own (aiohttp,
aioapns for iOS, firebase-admin for Android; not PushLab's) against a live lab whose
phones register with it, with the embedded broker and with Mosquitto."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from typing import Any

import pytest
from aiohttp import web

from simulator.load.brokers import Mosquitto, find_binary

pytestmark = pytest.mark.live

APP = "com.example.chat"


class MyAppServer:
    """A back end as a team would write one: it stores what phones register and sends
    through APNs and FCM with the usual client libraries."""

    def __init__(self) -> None:
        self.installs: dict[tuple[str, str], dict[str, Any]] = {}
        self.apns: Any = None
        self.fcm_app: Any = None
        self.url = ""

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.installs[(body["device"], body["app"])] = body
        return web.json_response({"ok": True})

    async def send(self, device: str, title: str) -> tuple[bool, str]:
        """(accepted, reason) as the provider answered."""
        install = self.installs[(device, APP)]
        if install["platform"] == "ios":
            from aioapns import NotificationRequest

            result = await self.apns.send_notification(NotificationRequest(
                device_token=install["token"],
                message={"aps": {"alert": {"title": title, "body": "hi"}}}))
            return result.is_successful, f"{result.status} {result.description}"
        return await asyncio.to_thread(self._send_fcm, install["token"], title)

    def _send_fcm(self, token: str, title: str) -> tuple[bool, str]:
        from firebase_admin import messaging

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                messaging.send(messaging.Message(
                    token=token, notification=messaging.Notification(title=title, body="hi")),
                    app=self.fcm_app)
            return True, "200"
        except messaging.UnregisteredError as exc:
            return False, f"UNREGISTERED {exc}"


@pytest.fixture
async def my_server():
    server = MyAppServer()
    app = web.Application()
    app.router.add_post("/devices", server.register)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield server
    await runner.cleanup()


@pytest.fixture(params=["embedded", "mosquitto"])
def broker_url(request):
    if request.param == "embedded":
        yield None
        return
    if find_binary("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/install-brokers.sh)")
    with Mosquitto() as broker:
        yield broker.url


@pytest.fixture
def pushlab_config(my_server, broker_url):
    # the app server runs on this test's loop: the lab must not wait for registrations
    # while the fixture holds the loop, the test waits for them instead
    return {"devices": 2, "android": 0.5, "apps": [APP], "app_server": "none",
            "register_url": my_server.url + "/devices", "broker_url": broker_url,
            "wait_registered": False}


@pytest.fixture
async def clients(my_server, pushlab_lab, monkeypatch):
    """Point aioapns and firebase-admin at the lab: host, port, CA and credentials only."""
    import firebase_admin
    from aioapns import APNs
    from aioapns.connection import APNsProductionClientProtocol
    from firebase_admin import credentials, messaging

    apns = pushlab_lab.apns
    monkeypatch.setattr(APNsProductionClientProtocol, "APNS_SERVER", apns["host"])
    monkeypatch.setattr(APNsProductionClientProtocol, "APNS_PORT", apns["port"])
    with open(apns["key_file"]) as f:
        key = f.read()
    my_server.apns = APNs(key=key, key_id=apns["key_id"], team_id=apns["team_id"], topic=APP,
                          ssl_context=ssl.create_default_context(cafile=pushlab_lab.info["ca"]),
                          max_connection_attempts=1)
    fcm = pushlab_lab.fcm
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL",
                        fcm["url"] + "/v1/projects/{0}/messages:send")
    my_server.fcm_app = firebase_admin.initialize_app(
        credentials.Certificate(fcm["service_account_file"]), name=f"lab-{id(my_server)}")
    yield my_server
    my_server.apns.pool.close()
    await asyncio.to_thread(firebase_admin.delete_app, my_server.fcm_app)  # it runs a loop


async def test_my_app_server_end_to_end(pushlab_lab, clients) -> None:
    lab, server = pushlab_lab, clients
    phones = {d["platform"]: d["id"] for d in lab.devices()}
    assert set(phones) == {"ios", "android"}

    # the phones register with my server, with the tokens the providers gave them
    for device in phones.values():
        token = await lab.aio.wait_registered(device, APP)
        body = server.installs[(device, APP)]
        assert body["token"] == token and body["app"] == APP
        assert body["provider"] == ("apns" if device.startswith("ios") else "fcm")

    # a send reaches the right phone, and only that one
    for platform, device in phones.items():
        ok, reason = await server.send(device, f"to {platform}")
        assert ok, reason
        got = await lab.aio.wait_for_delivery(device, APP, timeout=10)
        assert got["provider"] == ("apns" if platform == "ios" else "fcm")
        assert "to " + platform in str(got["payload"])
        other = phones["android" if platform == "ios" else "ios"]
        assert all(f"to {platform}" not in str(e["payload"]) for e in lab.inbox(other))
    assert lab.sent("apns", token=server.installs[(phones["ios"], APP)]["token"])

    # offline: the provider stores the message; it arrives when the phone is back
    for device in phones.values():
        mark = lab.cursor()
        lab.device(device).go_offline()
        ok, reason = await server.send(device, "while away")
        assert ok, reason
        await asyncio.sleep(0.3)
        assert lab.inbox(device, since=mark) == []
        lab.device(device).go_online()
        got = await lab.aio.wait_for_delivery(device, APP, since=mark, timeout=10)
        assert "while away" in str(got["payload"])

    # uninstalled: the next send is refused with the provider's own answer
    for platform, device in phones.items():
        lab.device(device).uninstall(APP)
        ok, reason = await server.send(device, "after uninstall")
        assert not ok
        assert ("410 Unregistered" if platform == "ios" else "UNREGISTERED") in reason


def test_fake_apns_and_fake_fcm_alone(fake_apns, fake_fcm) -> None:
    import time

    import httpx
    import jwt

    token = fake_apns.issue("phone-1", APP)
    with open(fake_apns.key_file) as f:
        bearer = jwt.encode({"iss": fake_apns.team_id, "iat": int(time.time())}, f.read(),
                            algorithm="ES256", headers={"kid": fake_apns.key_id})
    fake_apns.fail_next(token, 429, "TooManyRequests")
    tls = ssl.create_default_context(cafile=fake_apns.ca)
    with httpx.Client(http2=True, verify=tls) as client:
        def send() -> httpx.Response:
            return client.post(f"{fake_apns.url}/3/device/{token}", json={"aps": {}},
                               headers={"authorization": f"bearer {bearer}",
                                        "apns-topic": APP})
        assert (send().status_code, send().status_code) == (429, 200)
    assert [e["status"] for e in fake_apns.sent(token)] == [429, 200]

    fcm_token = fake_fcm.issue("phone-2", APP)
    fake_fcm.uninstall("phone-2", APP)
    r = httpx.post(fake_fcm.url + "/fcm/send", json={"to": fcm_token},
                   headers={"authorization": f"key={fake_fcm.legacy_server_key}"})
    assert r.status_code == 200 and r.json()["results"][0]["error"] == "NotRegistered"
    assert len(fake_fcm.sent(fcm_token)) == 1
