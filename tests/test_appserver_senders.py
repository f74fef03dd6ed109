"""Senders and the app server against the provider look-alikes, in memory.

The app server never imports the fake providers; these tests wire the two
together the way the world builder does, through ``MemoryTransport``.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from app_server.retry import RetryPolicy
from app_server.senders import (
    ApnsSender,
    ApnsTokenSigner,
    FcmSender,
    Notification,
    OAuthTokenSource,
)
from app_server.service import AppServer
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.oauth import generate_service_account
from simulator.core.clock import run_virtual
from simulator.core.http import MemoryTransport
from simulator.core.trace import EventKind, Recorder, Trace

T0 = 1_767_225_600.0
TOPIC = "com.example.chat"


class WallClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def account() -> dict[str, str]:
    return generate_service_account("pushlab-demo", "https://oauth2.pushlab.test/token")


# ---- APNs --------------------------------------------------------------------------------

def test_provider_token_is_es256_and_refreshed_between_20_and_60_minutes() -> None:
    key = generate_key()
    wall = WallClock()
    signer = ApnsTokenSigner(key.private_pem, key.key_id, key.team_id, wall, refresh_s=40 * 60)
    first = signer.token()
    wall.t += 39 * 60
    assert signer.token() == first
    wall.t += 2 * 60
    second = signer.token()
    assert second != first and signer.issued == 2
    import jwt
    assert jwt.get_unverified_header(second) == {"alg": "ES256", "kid": key.key_id,
                                                 "typ": "JWT"}
    for bad in (10 * 60, 60 * 60, 90 * 60):
        with pytest.raises(ValueError):
            ApnsTokenSigner(key.private_pem, key.key_id, key.team_id, wall, refresh_s=bad)


def _apns_world(loop_time, trace: Trace, retry: RetryPolicy | None = None):
    key = generate_key(topics=(TOPIC,))
    wall = WallClock()
    lab = build_lab(clock=loop_time, wall_clock=lambda: T0 + loop_time(),
                    trusted_keys={key.key_id: key.trusted()})
    signer = ApnsTokenSigner(key.private_pem, key.key_id, key.team_id,
                             lambda: T0 + loop_time())
    sender = ApnsSender(MemoryTransport(lab.production.handle, latency=0.01), TOPIC,
                        random.Random(1), auth=signer, wall_clock=wall)
    server = AppServer({"ios": sender}, loop_time, trace, retry=retry or RetryPolicy(),
                       rng=random.Random(2))
    return lab, server


def test_apns_send_prunes_a_token_on_410() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        trace = Trace(loop.time)
        lab, server = _apns_world(loop.time, trace)
        token = lab.issue("phone", TOPIC)
        await server.register_token(user="ann", device_id="phone", app_id=TOPIC,
                                    platform="ios", token=token)
        ok = await server.send_to_user("ann", Notification("hi"))
        lab.uninstall("phone", TOPIC)
        dead = await server.send_to_user("ann", Notification("again"))
        after = await server.send_to_user("ann", Notification("nobody"))
        return ok, dead, after, server

    ok, dead, after, server = run_virtual(main())
    assert [r.status for r in ok] == [200]
    assert [(r.status, r.reason) for r in dead] == [(410, "Unregistered")]
    assert dead[0].timestamp_ms is not None
    assert after == [] and server.stats.pruned == 1 and server.stats.retries == 0


def test_apns_4xx_is_never_retried_but_503_is_with_retry_after() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        trace = Trace(loop.time)
        rec = Recorder()
        trace.subscribe(rec)
        lab, server = _apns_world(loop.time, trace, RetryPolicy(max_attempts=5, base=1.0))
        token = lab.issue("phone", TOPIC)
        await server.register_token(user="ann", device_id="phone", app_id=TOPIC,
                                    platform="ios", token=token)
        lab.faults.fail_next(1, 400, "BadTopic")
        bad = await server.send_to_user("ann", Notification("x"))
        lab.faults.fail_next(2, 503, "ServiceUnavailable", retry_after=60)
        t = loop.time()
        good = await server.send_to_user("ann", Notification("y"))
        return bad, good, loop.time() - t, rec

    bad, good, waited, rec = run_virtual(main())
    assert bad[0].status == 400 and bad[0].attempts == 1
    assert good[0].status == 200 and good[0].attempts == 3
    assert waited >= 120.0  # two waits, each at least Retry-After
    retries = [e for e in rec.events if e.kind == EventKind.RETRY]
    assert [e.retry_after for e in retries] == [60.0, 60.0]


def test_apns_gives_up_after_max_attempts() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server = _apns_world(loop.time, Trace(loop.time), RetryPolicy(max_attempts=3))
        token = lab.issue("phone", TOPIC)
        await server.register_token(user="ann", device_id="phone", app_id=TOPIC,
                                    platform="ios", token=token)
        lab.faults.set_outage("unavailable")
        return await server.send_to_user("ann", Notification("x")), server

    results, server = run_virtual(main())
    assert results[0].status == 503 and results[0].attempts == 3
    assert server.stats.gave_up == 1 and server.stats.retries == 2


# ---- FCM ----------------------------------------------------------------------------------

def _fcm_world(loop_time, account, api="v1"):
    lab = build_fcm_lab(3, clock=loop_time, wall_clock=lambda: T0 + loop_time())
    lab.core.oauth.trust(account)
    transport = MemoryTransport(lab.core.handle, latency=0.01)
    creds = OAuthTokenSource(account, transport, lambda: T0 + loop_time())
    sender = FcmSender(transport, creds, random.Random(4), api=api)
    server = AppServer({"android": sender}, loop_time, Trace(loop_time), rng=random.Random(5))
    return lab, server, creds


def test_fcm_oauth_token_is_fetched_once_for_many_sends_and_renewed_before_expiry(
        account) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server, creds = _fcm_world(loop.time, account)
        token = lab.issue("pixel", "com.example.chat")
        await server.register_token(user="bo", device_id="pixel", app_id="com.example.chat",
                                    platform="android", token=token)
        first = await asyncio.gather(*(server.send_to_user("bo", Notification(str(i)))
                                       for i in range(5)))
        fetched_first = creds.fetched
        await asyncio.sleep(3600 - 200)  # inside the 5-minute margin of the 1 h lifetime
        later = await server.send_to_user("bo", Notification("later"))
        return first, fetched_first, later, creds.fetched

    first, fetched_first, later, fetched = run_virtual(main())
    assert all(r[0].status == 200 and r[0].provider_msg_id for r in first)
    assert fetched_first == 1
    assert later[0].status == 200 and fetched == 2


def test_fcm_unregistered_token_is_pruned(account) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server, _ = _fcm_world(loop.time, account)
        token = lab.issue("pixel", "com.example.chat")
        await server.register_token(user="bo", device_id="pixel", app_id="com.example.chat",
                                    platform="android", token=token)
        lab.uninstall("pixel", "com.example.chat")
        return await server.send_to_user("bo", Notification("x")), server

    results, server = run_virtual(main())
    assert (results[0].status, results[0].reason) == (404, "UNREGISTERED")
    assert server.stats.pruned == 1 and server.store.for_user("bo") == []


def test_fcm_legacy_canonical_id_replaces_the_stored_token(account) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server, _ = _fcm_world(loop.time, account, api="legacy")
        old = lab.issue("pixel", "com.example.chat")
        await server.register_token(user="bo", device_id="pixel", app_id="com.example.chat",
                                    platform="android", token=old)
        new = lab.backend.registry.rotate("pixel", "com.example.chat", loop.time()).token
        first = await server.send_to_user("bo", Notification("x"))
        return old, new, first, server

    old, new, first, server = run_virtual(main())
    assert first[0].ok and first[0].canonical_token == new
    assert [i.token for i in server.store.for_user("bo")] == [new]
    assert server.stats.replaced == 1


def test_fcm_legacy_not_registered_is_pruned(account) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server, _ = _fcm_world(loop.time, account, api="legacy")
        token = lab.issue("pixel", "com.example.chat")
        await server.register_token(user="bo", device_id="pixel", app_id="com.example.chat",
                                    platform="android", token=token)
        lab.uninstall("pixel", "com.example.chat")
        return await server.send_to_user("bo", Notification("x")), server

    results, server = run_virtual(main())
    assert results[0].reason == "NotRegistered" and server.stats.pruned == 1


def test_fcm_topic_send_and_subscription(account) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        lab, server, _ = _fcm_world(loop.time, account)
        for dev in ("a", "b"):
            token = lab.issue(dev, "com.example.news")
            server.store.add_subscription(dev, "com.example.news", "sports")
            await server.register_token(user=dev, device_id=dev, app_id="com.example.news",
                                        platform="android", token=token)
        return await server.send_to_topic("sports", Notification("goal")), lab

    result, lab = run_virtual(main())
    assert result.status == 200
    assert len(lab.core.topics.subscribers("sports")) == 2
