"""PushLab's app server, live, sending Web Push: a browser's subscription registered over the
REST API, the push encrypted and VAPID-signed, the 410 of a dead subscription pruned."""

from __future__ import annotations

import json
import time
import uuid

import aiohttp
import pytest

from app_server.retry import RetryPolicy
from app_server.server import ServerConfig, start
from fake_providers.webpush.core import b64decode_any
from fake_providers.webpush.keys import SubscriptionKeys, VapidKeys
from fake_providers.webpush.lab import build_webpush_core
from fake_providers.webpush.server import start_webpush_server

pytestmark = pytest.mark.live
KEY = {"X-API-Key": "k"}


async def _browser(session: aiohttp.ClientSession, ws_url: str, vapid: VapidKeys):
    """The browser's half over a real websocket: hello, then register with the VAPID key."""
    ws = await session.ws_connect(ws_url)
    await ws.send_str(json.dumps({"messageType": "hello", "broadcasts": {},
                                  "use_webpush": True}))
    assert json.loads((await ws.receive(timeout=5)).data)["status"] == 200
    await ws.send_str(json.dumps({"messageType": "register", "channelID": str(uuid.uuid4()),
                                  "key": vapid.public_key}))
    reply = json.loads((await ws.receive(timeout=5)).data)
    return ws, reply["pushEndpoint"]


async def test_app_server_sends_web_push_and_prunes_a_dead_subscription(tmp_path) -> None:
    core = build_webpush_core(3, wall_clock=time.time)
    service = await start_webpush_server(core)
    vapid = VapidKeys.generate()
    (tmp_path / "vapid.pem").write_bytes(vapid.private_pem())
    cfg = ServerConfig(api_key="k", port=0, db=str(tmp_path / "app.db"),
                       vapid_key=tmp_path / "vapid.pem", retry=RetryPolicy(max_attempts=1))
    app = await start(cfg)
    keys = SubscriptionKeys.generate()
    try:
        async with aiohttp.ClientSession() as session:
            ws, endpoint = await _browser(session, service.ws_url, vapid)
            token = json.dumps(keys.subscription_info(endpoint), separators=(",", ":"))
            async with session.post(f"{app.url}/v1/tokens", headers=KEY, json={
                    "device": "laptop", "app": "chat.example", "platform": "browser",
                    "token": token, "user": "alice"}) as resp:
                assert resp.status == 200, await resp.text()
            async with session.post(f"{app.url}/v1/send/user/alice", headers=KEY,
                                    json={"title": "Hi", "body": "over REST"}) as resp:
                [result] = (await resp.json())["results"]
            assert result["status"] == 201 and result["provider_msg_id"]
            note = json.loads((await ws.receive(timeout=5)).data)
            plain = keys.decrypt(b64decode_any(note["data"]), note["headers"])
            assert json.loads(plain) == {"title": "Hi", "body": "over REST"}
            core.expire_subscription(endpoint.rsplit("/", 1)[1])
            async with session.post(f"{app.url}/v1/send/user/alice", headers=KEY,
                                    json={"title": "gone"}) as resp:
                [result] = (await resp.json())["results"]
            assert result["status"] == 410 and result["pruned"]
            assert "errno 103" in result["reason"]
            assert app.server.store.for_device("laptop")[0].token is None
            await ws.close()
    finally:
        await app.close()
        await service.close()


@pytest.mark.parametrize("text", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                  "-----END PRIVATE KEY-----\n"])
def test_serve_app_server_refuses_a_bad_vapid_key_in_one_line(tmp_path, text: str) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app as cli

    (tmp_path / "vapid.pem").write_text(text)
    done = CliRunner().invoke(cli, ["serve", "app-server", "--api-key", "k", "--port", "0",
                                    "--apns-url", "", "--fcm-url", "", "--db",
                                    str(tmp_path / "a.db"), "--vapid-key",
                                    str(tmp_path / "vapid.pem")])
    assert done.exit_code == 2 and "--vapid-key" in done.output
    assert "Traceback" not in done.output
