"""A real APNs client library (aioapns 4.x) against the lab, changed only in host, port and CA."""

from __future__ import annotations

import ssl
import time

import pytest
from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsDevelopmentClientProtocol, APNsProductionClientProtocol

from fake_providers.apns.h2server import start_apns_server
from fake_providers.apns.keys import generate_key, read_key, write_key
from fake_providers.apns.lab import build_lab
from fake_providers.tls import ensure_tls

pytestmark = pytest.mark.live

APP = "com.example.chat"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def key(tmp_path):
    # as `pushlab apns keygen` does: AuthKey_<KEYID>.p8 + its description
    p8 = write_key(generate_key(), tmp_path / "keys")
    return read_key(p8)


@pytest.fixture
async def lab(key):
    return build_lab(trusted_keys={key.key_id: key.trusted()}, wall_clock=time.time)


@pytest.fixture
async def apns(lab, key, tls, monkeypatch):
    """An aioapns client aimed at the lab: host, port and trusted CA are all that change."""
    servers = {
        "production": await start_apns_server(lab.production, tls=tls),
        "sandbox": await start_apns_server(lab.sandbox, tls=tls),
    }
    clients = []

    def make(sandbox: bool = False, **kw) -> APNs:
        server = servers["sandbox" if sandbox else "production"]
        proto = APNsDevelopmentClientProtocol if sandbox else APNsProductionClientProtocol
        monkeypatch.setattr(proto, "APNS_SERVER", server.host)
        monkeypatch.setattr(proto, "APNS_PORT", server.port)
        client = APNs(key=key.private_pem.decode(), key_id=key.key_id, team_id=key.team_id,
                      topic=APP, use_sandbox=sandbox,
                      ssl_context=ssl.create_default_context(cafile=str(tls.ca_path)),
                      max_connection_attempts=1, **kw)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.pool.close()
    for s in servers.values():
        await s.close()


async def test_success_is_matched_by_apns_id(lab, apns):
    token = lab.issue("d1", APP)
    client = apns()
    req = NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}})
    result = await client.send_notification(req)
    assert result.is_successful, (result.status, result.description)
    assert result.notification_id == req.notification_id
    assert lab.activity.accepted[-1].msg_id == req.notification_id


async def test_sandbox_environment(lab, apns):
    token = lab.issue("d1", APP, "sandbox")
    prod_token = lab.issue("d2", APP, "production")
    client = apns(sandbox=True)
    ok = await client.send_notification(
        NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}}))
    wrong = await client.send_notification(
        NotificationRequest(device_token=prod_token, message={"aps": {"alert": "hi"}}))
    assert ok.is_successful
    assert (wrong.status, wrong.description) == ("400", "BadDeviceToken")


async def test_400_bad_device_token(lab, apns):
    client = apns()
    result = await client.send_notification(
        NotificationRequest(device_token="00" * 32, message={"aps": {"alert": "hi"}}))
    assert (result.status, result.description) == ("400", "BadDeviceToken")


async def test_400_device_token_not_for_topic(lab, apns):
    token = lab.issue("d1", "com.example.other")
    result = await apns().send_notification(
        NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}}))
    assert (result.status, result.description) == ("400", "DeviceTokenNotForTopic")


async def test_400_background_with_priority_10(lab, apns):
    token = lab.issue("d1", APP)
    result = await apns().send_notification(NotificationRequest(
        device_token=token, message={"aps": {"content-available": 1}},
        push_type=PushType.BACKGROUND, priority=10))
    assert (result.status, result.description) == ("400", "BadPriority")
    ok = await apns().send_notification(NotificationRequest(
        device_token=token, message={"aps": {"content-available": 1}},
        push_type=PushType.BACKGROUND, priority=5))
    assert ok.is_successful


async def test_403_unknown_key(lab, apns, key):
    token = lab.issue("d1", APP)
    lab.production.trusted_keys.clear()
    lab.production._jwt_cache.clear()
    result = await apns().send_notification(
        NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}}))
    assert (result.status, result.description) == ("403", "InvalidProviderToken")


async def test_410_unregistered_with_timestamp(lab, apns):
    token = lab.issue("d1", APP)
    lab.uninstall("d1", APP)
    result = await apns().send_notification(
        NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}}))
    assert (result.status, result.description) == ("410", "Unregistered")
    assert isinstance(result.timestamp, int)
    assert abs(result.timestamp - time.time() * 1000) < 60_000


async def test_413_payload_too_large(lab, apns):
    token = lab.issue("d1", APP)
    result = await apns().send_notification(NotificationRequest(
        device_token=token, message={"aps": {"alert": "x" * 5000}}))
    assert (result.status, result.description) == ("413", "PayloadTooLarge")
    voip = await apns().send_notification(NotificationRequest(
        device_token=token, message={"aps": {"alert": "x" * 4500}}, push_type=PushType.VOIP,
        apns_topic=APP + ".voip"))
    assert voip.is_successful, voip.description


async def test_scripted_fault_and_many_concurrent_requests(lab, apns):
    import asyncio

    tokens = [lab.issue(f"d{i}", APP) for i in range(20)]
    lab.faults.fail_token(tokens[3], 410, "ExpiredToken")
    client = apns()
    results = await asyncio.gather(*[
        client.send_notification(NotificationRequest(device_token=t,
                                                     message={"aps": {"alert": "hi"}}))
        for t in tokens])
    assert [r.status for r in results].count("200") == 19
    assert results[3].description == "ExpiredToken" and results[3].timestamp
