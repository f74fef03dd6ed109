"""The live lab's event streams: deliveries and trace events over a websocket (and SSE),
with ``since`` replay, a clean close when the lab stops, bad requests as 4xx JSON."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest

from simulator.core.events import TraceEvent
from simulator.live.lab import Lab, LabConfig

pytestmark = pytest.mark.live

APP = "com.example.chat"


@pytest.fixture
async def lab(tmp_path):
    lab = await Lab(LabConfig(devices=2, workdir=tmp_path / "lab")).start()
    await lab.wait_ready(20)
    yield lab
    await lab.close()


async def _send(lab: Lab, user: str, title: str) -> None:
    server = lab.info["app_server"]
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(f"{server['url']}/v1/send/user/{user}", json={"title": title},
                         headers={"X-API-Key": server["api_key"]})
    assert r.status_code == 200, r.text


async def _next_json(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def test_deliveries_websocket_follows_then_replays_since(lab) -> None:
    control = lab.info["control_url"]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{control}/events/ws?device=android-1") as ws:
            await _send(lab, "user-ios-1", "not for android-1")
            await _send(lab, "user-android-1", "first")
            first = await _next_json(ws)
            await _send(lab, "user-android-1", "second")
            second = await _next_json(ws)
        assert (first["device"], second["device"]) == ("android-1", "android-1")
        assert "first" in json.dumps(first["payload"]) and second["seq"] > first["seq"]
        async with httpx.AsyncClient() as c:  # the same JSON as the SSE stream's
            inbox = (await c.get(f"{control}/devices/android-1/inbox")).json()["entries"]
        assert inbox == [first, second]
        async with s.ws_connect(f"{control}/events/ws?since={first['seq']}") as ws:
            replayed = await _next_json(ws)  # every phone's deliveries after `first`
        assert replayed == second


async def test_trace_websocket_replays_the_phones_and_shows_each_hop(lab) -> None:
    control = lab.info["control_url"]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{control}/trace/ws?since=0") as ws:
            seen: list[TraceEvent] = []
            while len({e.device for e in seen if e.kind == "connected"}) < 2:
                seen.append(TraceEvent.from_json(await _next_json_raw(ws)))  # replayed
            await _send(lab, "user-ios-1", "traced")
            while "handed" not in {e.kind for e in seen}:
                seen.append(TraceEvent.from_json(await _next_json_raw(ws)))
    assert {e.device for e in seen if e.kind == "connected"} == {"ios-1", "android-1"}
    assert not {"radio_state", "energy"} & {e.kind for e in seen}  # never built for it
    handed = next(e for e in seen if e.kind == "handed")
    hops = [e.kind for e in seen if getattr(e, "msg", None) == handed.msg]
    assert hops[0] == "sent" and {"accepted", "forwarded", "handed"} <= set(hops), hops


async def _next_json_raw(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.data


async def test_trace_sse_numbers_events_and_resumes_from_last_event_id(lab) -> None:
    control = lab.info["control_url"]
    async with httpx.AsyncClient(base_url=control, timeout=10) as c:
        async with c.stream("GET", "/trace", params={"device": "ios-1"}) as stream:
            lines = stream.aiter_lines()
            first_id = await asyncio.wait_for(_field(lines, "id: "), 10)
            data = json.loads(await asyncio.wait_for(_field(lines, "data: "), 10))
        assert data["seq"] == int(first_id) and data["device"] == "ios-1"
        headers = {"Last-Event-ID": first_id}
        async with c.stream("GET", "/trace", params={"device": "ios-1"},
                            headers=headers) as stream:
            later = int(await asyncio.wait_for(_field(stream.aiter_lines(), "id: "), 10))
        assert later > int(first_id)


async def _field(lines, prefix: str) -> str:
    async for line in lines:
        if line.startswith(prefix):
            return line[len(prefix):]
    raise AssertionError("stream ended")


async def test_a_stopping_lab_closes_its_websockets_with_going_away(tmp_path) -> None:
    lab = await Lab(LabConfig(devices=1, android=0.0, workdir=tmp_path / "lab")).start()
    control = lab.info["control_url"]
    async with aiohttp.ClientSession() as s:
        streams = [await s.ws_connect(f"{control}/{path}") for path in ("events/ws",
                                                                        "trace/ws")]
        readers = [asyncio.create_task(_until_closed(ws)) for ws in streams]
        await lab.close()
        closes = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert [c.data for c in closes] == [aiohttp.WSCloseCode.GOING_AWAY] * 2, closes
    assert [ws.close_code for ws in streams] == [aiohttp.WSCloseCode.GOING_AWAY] * 2


async def _until_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
        pass  # the phone's connection and registration, then the close
    return msg


BAD_STREAMS = [
    ("/events/ws?device=nope", 404), ("/events/ws?since=x", 400), ("/trace/ws?since=-1", 400),
    ("/trace/ws?device=nope", 404), ("/trace?since=soon", 400),
]


async def test_bad_stream_requests_get_4xx_json(lab) -> None:
    control = lab.info["control_url"]
    async with aiohttp.ClientSession() as s:
        for path, status in BAD_STREAMS:
            async with s.get(control + path, headers={"Upgrade": "websocket"}) as r:
                assert (r.status, bool((await r.json())["error"])) == (status, True), path
            if "/ws" in path:
                with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                    await s.ws_connect(control + path)
                assert exc.value.status == status, path
        async with s.get(control + "/trace/ws") as r:  # plain GET, no upgrade
            assert r.status == 426 and "websocket" in (await r.json())["error"]
        async with s.get(control + "/openapi.json") as r:
            paths = (await r.json())["paths"]
        assert {"/events/ws", "/trace", "/trace/ws"} <= set(paths)
        assert "101" in paths["/trace/ws"]["get"]["responses"]


async def test_one_phones_trace_keeps_its_messages_provider_hops(lab) -> None:
    """``?device=`` keeps the events naming the phone and the later hops of its messages,
    which name the provider (FCM's ``accepted``), not the phone."""
    control = lab.info["control_url"]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{control}/trace/ws?device=android-1") as ws:
            await _send(lab, "user-ios-1", "someone else's")
            await _send(lab, "user-android-1", "mine")
            seen: list[TraceEvent] = []
            while "handed" not in {e.kind for e in seen}:
                seen.append(TraceEvent.from_json(await _next_json_raw(ws)))
    assert {getattr(e, "device", None) or "-" for e in seen} == {"android-1", "-"}
    assert "accepted" in {e.kind for e in seen} and all(
        getattr(e, "provider", None) in (None, "fcm") for e in seen), seen
