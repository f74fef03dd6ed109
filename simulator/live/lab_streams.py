"""The control API's streams: deliveries and trace events, as Server-Sent Events or a
websocket, each with ``since`` replay.

Every message of every stream is one JSON object carrying ``seq``, its number in that
stream; ``since=N`` first replays what is still kept after N, then follows live. A
delivery is the inbox entry (:meth:`simulator.live.lab.Lab._record`); a trace event is
its line of a trace file (:mod:`simulator.core.events`) with ``seq`` added, which
:meth:`TraceEvent.from_json` reads as it is. The SSE form numbers each event with
``id:`` (so ``Last-Event-ID`` resumes too); the websocket form sends one text message
per event and closes with 1001 (going away) when the lab stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from simulator.core.events import EVENT_TYPES, EventKind, TraceEvent

TRACE_LIMIT = 20_000  # trace events kept for replay
TRACE_KINDS = frozenset(EVENT_TYPES) - {EventKind.RADIO_STATE, EventKind.ENERGY}
"""What the streams carry: every kind but the radio's state changes and energy samples,
which a lab of many phones would emit far more of than hops (and never build now)."""
QUEUE_LIMIT = 10_000  # per open stream; a reader this far behind loses events
KEEPALIVE_S = 15.0

Item = tuple[int, str]  # (seq, the JSON text sent)


class TraceFeed:
    """The lab's trace, numbered: a ring kept for replay and a queue per open stream.

    Subscribed from the lab's start, so a stream opened later still replays the
    phones' connections and every recent message's hops.
    """

    def __init__(self, limit: int = TRACE_LIMIT) -> None:
        self.ring: deque[tuple[int, TraceEvent]] = deque(maxlen=limit)
        self.seq = 0
        self.queues: set[asyncio.Queue[tuple[int, TraceEvent] | None]] = set()

    def __call__(self, event: TraceEvent) -> None:
        self.seq += 1
        item = (self.seq, event)
        self.ring.append(item)
        for queue in self.queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)

    def end(self) -> None:
        """Every open stream finishes (the lab is stopping)."""
        for queue in self.queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


def trace_line(seq: int, event: TraceEvent) -> str:
    """The event's trace-file line with ``"seq": N`` first."""
    return f'{{"seq":{seq},{event.to_json()[1:]}'


@dataclass
class Source:
    """One stream's events: how to listen, what is kept, and how one is written.

    ``encode`` turns a queued item into (seq, JSON), or None for one this stream
    filters out.
    """

    name: str  # the SSE event name
    queues: set[Any]
    replay: Callable[[int], list[Item]]
    encode: Callable[[Any], Item | None]


def delivery_source(lab: Any, device: str | None) -> Source:
    def replay(since: int) -> list[Item]:
        boxes = [lab.inboxes[device]] if device else list(lab.inboxes.values())
        entries = sorted((e for box in boxes for e in box.since(since)),
                         key=lambda e: e["seq"])
        return [(e["seq"], json.dumps(e)) for e in entries]

    def encode(entry: dict[str, Any]) -> Item | None:
        if device is not None and entry["device"] != device:
            return None
        return entry["seq"], json.dumps(entry)

    return Source("delivery", lab.listeners, replay, encode)


def trace_source(feed: TraceFeed, device: str | None) -> Source:
    """The trace, or with ``device`` the events naming that phone and every later hop
    of the messages they name (under the provider's name for them too)."""
    messages: set[str] = set()

    def wanted(event: TraceEvent) -> bool:
        if device is None:
            return True
        msg = getattr(event, "msg", None)
        if getattr(event, "device", None) == device:
            if msg is not None:
                messages.add(msg)
            return True
        if msg is None or msg not in messages:
            return False
        if event.kind == "provider_id":
            messages.add(event.provider_msg)  # type: ignore[attr-defined]
        return True

    def replay(since: int) -> list[Item]:
        return [(seq, trace_line(seq, e)) for seq, e in list(feed.ring)
                if seq > since and wanted(e)]

    def encode(item: tuple[int, TraceEvent]) -> Item | None:
        seq, event = item
        return (seq, trace_line(seq, event)) if wanted(event) else None

    return Source("trace", feed.queues, replay, encode)


async def follow(source: Source, since: int) -> AsyncIterator[Item | None]:
    """What was kept after ``since``, then each new event, in order and once each;
    None when nothing came for :data:`KEEPALIVE_S`. Ends when the lab stops."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_LIMIT)
    source.queues.add(queue)  # before the replay: nothing falls between the two
    try:
        last = since
        for seq, text in source.replay(since):
            last = seq
            yield seq, text
        while True:
            try:
                raw = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            if raw is None:
                return
            item = source.encode(raw)
            if item is not None and item[0] > last:
                last = item[0]
                yield item
    finally:
        source.queues.discard(queue)


def since_of(request: web.Request) -> int:
    """``?since=N`` (or SSE's ``Last-Event-ID``); HTTP 400 if it is not a number."""
    text = request.query.get("since", request.headers.get("Last-Event-ID", "0")).strip()
    if not text.isdigit():
        raise web.HTTPBadRequest(reason="since: an event number (0 or more)")
    return int(text)


async def serve_sse(request: web.Request, source: Source, since: int) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        async for item in follow(source, since):
            if item is None:
                await resp.write(b": keep-alive\n\n")
            else:
                seq, text = item
                await resp.write(f"id: {seq}\nevent: {source.name}\ndata: {text}\n\n".encode())
    return resp


async def serve_ws(request: web.Request, source: Source, since: int) -> web.StreamResponse:
    """One text message per event; the client's close ends it, and so does the lab's
    stop (close code 1001). Anything the client sends is ignored."""
    ws = web.WebSocketResponse(heartbeat=KEEPALIVE_S)
    if not ws.can_prepare(request).ok:
        return web.json_response({"error": "a websocket upgrade is expected here (GET "
                                           "with Upgrade: websocket)"}, status=426,
                                 headers={"Upgrade": "websocket"})
    await ws.prepare(request)
    lab_stopping = asyncio.Event()

    async def send() -> None:
        with contextlib.suppress(ConnectionResetError):
            async for item in follow(source, since):
                if item is not None:
                    await ws.send_str(item[1])
            lab_stopping.set()
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the lab is stopping")

    sender = asyncio.create_task(send())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        if not lab_stopping.is_set():  # the client went: stop following
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
    return ws
