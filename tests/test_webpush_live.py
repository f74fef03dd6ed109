"""Real senders and a websocket user agent against the live Web Push look-alike over HTTPS:
pywebpush and npm web-push, unmodified; an aiohttp websocket client plays the browser
(hello, register, notification, http_ece decryption, ack)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest
from py_vapid import Vapid01
from pywebpush import WebPushException, webpush

from fake_providers.tls import ensure_tls
from fake_providers.webpush.keys import SubscriptionKeys, VapidKeys
from fake_providers.webpush.lab import build_webpush_core
from fake_providers.webpush.server import start_webpush_server

pytestmark = pytest.mark.live
NODE_DIR = Path(__file__).parent / "node"
CLAIMS = {"sub": "mailto:ops@example.com"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def server(tls, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_path))
    srv = await start_webpush_server(build_webpush_core(5, wall_clock=__import__("time").time),
                                     ssl_context=tls.server_context(alpn=()))
    yield srv
    await srv.close()


class Agent:
    """The browser's side of the websocket, played by an aiohttp client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def call(self, msg: dict) -> dict:
        await self.ws.send_str(json.dumps(msg))
        return await self.next()

    async def next(self) -> dict:
        frame = await asyncio.wait_for(self.ws.receive(), 5)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        return json.loads(frame.data)

    async def subscribe(self, vapid: VapidKeys) -> tuple[str, str]:
        chid = str(uuid.uuid4())
        reply = await self.call({"messageType": "register", "channelID": chid,
                                 "key": vapid.public_key})
        assert reply["status"] == 200 and reply["channelID"] == chid
        return chid, reply["pushEndpoint"]


async def _agent(session: aiohttp.ClientSession, server, tls) -> Agent:
    ws = await session.ws_connect(server.ws_url, ssl=tls.client_context())
    agent = Agent(ws)
    hello = await agent.call({"messageType": "hello", "broadcasts": {}, "use_webpush": True})
    assert hello["status"] == 200 and len(hello["uaid"]) == 32
    return agent


async def test_pywebpush_sends_the_ua_decrypts_and_acks(server, tls) -> None:
    vapid, keys = VapidKeys.generate(), SubscriptionKeys.generate()
    async with aiohttp.ClientSession() as session:
        agent = await _agent(session, server, tls)
        chid, endpoint = await agent.subscribe(vapid)
        assert endpoint.startswith(server.url + "/wpush/v2/")
        info = keys.subscription_info(endpoint)
        resp = await asyncio.to_thread(webpush, info, "hi from pywebpush",
                                       vapid_private_key=vapid.private_raw,
                                       vapid_claims=dict(CLAIMS), ttl=60)
        assert resp.status_code == 201 and resp.headers["Location"].startswith(server.url + "/m/")
        note = await agent.next()
        assert note["messageType"] == "notification" and note["channelID"] == chid
        from fake_providers.webpush.core import b64decode_any

        assert keys.decrypt(b64decode_any(note["data"]), note["headers"]) == b"hi from pywebpush"
        await agent.ws.send_str(json.dumps({"messageType": "ack", "updates": [
            {"channelID": chid, "version": note["version"], "code": 100}]}))
        # the legacy encoding, with the draft-era 'WebPush' VAPID scheme pywebpush uses for it
        draft = Vapid01.from_raw(vapid.private_raw.encode())
        resp = await asyncio.to_thread(webpush, info, "legacy", vapid_private_key=draft,
                                       vapid_claims=dict(CLAIMS), ttl=60,
                                       content_encoding="aesgcm")
        assert resp.status_code == 201
        sent = {k.lower(): v for k, v in server.core.activity.accepted[-1].headers}
        assert sent["authorization"].startswith("WebPush ") and "p256ecdsa=" in sent["crypto-key"]
        note = await agent.next()
        assert note["headers"]["encoding"] == "aesgcm"
        assert keys.decrypt(b64decode_any(note["data"]), note["headers"]) == b"legacy"
        await agent.ws.close()
    for _ in range(50):
        if server.core.store.total() == 1:  # the unacked aesgcm message stays
            break
        await asyncio.sleep(0.02)
    assert server.core.store.total() == 1


async def test_pywebpush_gets_410_for_an_expired_subscription(server, tls) -> None:
    vapid, keys = VapidKeys.generate(), SubscriptionKeys.generate()
    async with aiohttp.ClientSession() as session:
        agent = await _agent(session, server, tls)
        _, endpoint = await agent.subscribe(vapid)
        token = endpoint.rsplit("/", 1)[1]
        async with session.post(f"{server.url}/admin/subscriptions/{token}/expire",
                                ssl=tls.client_context()) as r:
            assert r.status == 200
        with pytest.raises(WebPushException) as err:
            await asyncio.to_thread(webpush, keys.subscription_info(endpoint), "x",
                                    vapid_private_key=vapid.private_raw,
                                    vapid_claims=dict(CLAIMS))
        assert err.value.response.status_code == 410
        assert err.value.response.json()["errno"] == 103
        wrong = VapidKeys.generate()
        _, endpoint = await agent.subscribe(vapid)
        with pytest.raises(WebPushException) as err:
            await asyncio.to_thread(webpush, keys.subscription_info(endpoint), "x",
                                    vapid_private_key=wrong.private_raw,
                                    vapid_claims=dict(CLAIMS))
        assert err.value.response.status_code == 403


def _node_modules() -> Path:
    """tests/node's packages, installed from its lock file on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed on this machine")
    if not (NODE_DIR / "node_modules" / "web-push").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=180)
    return NODE_DIR / "node_modules"


async def test_npm_web_push_sends_over_https_with_the_lab_ca(server, tls) -> None:
    _node_modules()
    vapid, keys = VapidKeys.generate(), SubscriptionKeys.generate()
    async with aiohttp.ClientSession() as session:
        agent = await _agent(session, server, tls)
        chid, endpoint = await agent.subscribe(vapid)
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(tls.ca_path)}
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "send.js"), json.dumps(keys.subscription_info(endpoint)),
            "hi from node", vapid.public_key, vapid.private_raw, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["status"] == 201, (result, err.decode())
        note = await agent.next()
        from fake_providers.webpush.core import b64decode_any

        assert keys.decrypt(b64decode_any(note["data"]), note["headers"]) == b"hi from node"
        assert note["ttl"] == 60 and note["channelID"] == chid
    entry = server.core.activity.accepted[-1]
    sent = {k.lower(): v for k, v in entry.headers}
    assert sent["urgency"] == "high" and sent["topic"] == "lab"
    assert sent["authorization"].startswith("vapid t=")


async def test_bad_input_gets_autopush_json_and_a_bad_frame_closes_one_socket(server, tls) -> None:
    ctx: ssl.SSLContext = tls.client_context()
    async with aiohttp.ClientSession() as session:
        for method, path, body in [("POST", "/wpush/v2/zzz", b""), ("GET", "/nowhere", b""),
                                   ("PUT", "/wpush/v1/abc", b""),
                                   ("POST", "/wpush/v1/abc", b"x" * 2_000_000)]:
            async with session.request(method, server.url + path, data=body, ssl=ctx) as r:
                assert r.status in (404, 405, 413), (method, path)
                assert set(await r.json()) == {"code", "errno", "error", "message", "more_info"}
        good = await _agent(session, server, tls)
        bad = await _agent(session, server, tls)
        await bad.ws.send_str("{not json")
        frame = await asyncio.wait_for(bad.ws.receive(), 5)
        assert frame.type == aiohttp.WSMsgType.CLOSE and frame.data == 1002
        assert await good.call({}) == {}


def test_the_lab_certificate_names_mozillas_push_hosts(tls) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(tls.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"updates.push.services.mozilla.com", "push.services.mozilla.com"} <= \
        set(names.get_values_for_type(x509.DNSName))
