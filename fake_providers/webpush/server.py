"""The Web Push look-alike's live front end: aiohttp, HTTPS with the lab CA or plain HTTP.

One port serves everything a real push service does:

* ``POST /wpush/v2/{token}`` and ``/wpush/v1/{token}``: the push resources an
  application server sends to (pywebpush, npm web-push, PushLab's own sender);
* ``DELETE /m/{id}``: cancel a message before it is delivered;
* ``GET /`` (and ``/ws``) upgraded to a websocket: the user agent's connection,
  Mozilla's push protocol (point Firefox's ``dom.push.serverURL`` here);
* ``/admin/...``: the shared admin API plus Web Push's own routes
  (:func:`webpush_admin_routes`).

The shell is thin: the request goes whole to :meth:`WebPushCore.process`, each
websocket frame to its :class:`~fake_providers.webpush.protocol.ServerConnection`,
and the actions that come back are carried by a :class:`WsHub` (one writer task
and queue per connection, so a slow browser never blocks a sender). Its own jobs
are the ones a core cannot do: sleeping for scripted latency and cutting
connections (outage ``drop``).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from fake_providers.admin import admin_app, json_object, store_route
from fake_providers.webpush.core import Action, Close, PushOutcome, Send, WebPushCore
from fake_providers.webpush.errors import error_response
from fake_providers.webpush.protocol import MAX_FRAME, ServerConnection, encode, log
from simulator.core.http import HttpRequest

_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding"})


class WsHub:
    """Carries core actions to live websockets: connection id -> its outbound queue."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue] = {}
        self.writers: dict[str, asyncio.Task] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"ws{next(self._ids)}"

    def add(self, conn: str, ws: web.WebSocketResponse) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues[conn] = queue
        self.writers[conn] = asyncio.ensure_future(self._write(ws, queue))

    async def _write(self, ws: web.WebSocketResponse, queue: asyncio.Queue) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            try:
                if isinstance(item, Close):
                    await ws.close(code=item.code, message=item.reason.encode()[:120])
                    return
                await ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return

    def dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            queue = self.queues.get(action.conn)
            if queue is None:
                continue
            queue.put_nowait(encode(action.message) if isinstance(action, Send) else action)

    async def remove(self, conn: str) -> None:
        queue = self.queues.pop(conn, None)
        writer = self.writers.pop(conn, None)
        if queue is not None:
            queue.put_nowait(None)
        if writer is not None:
            try:
                await asyncio.wait_for(writer, 1.0)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()


def make_push_handler(core: WebPushCore, hub: WsHub):  # noqa: ANN201 - aiohttp handler
    """The catch-all handler: push resources, message resources, everything else's 404."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            resp = error_response(413, 104, f"Data payload must be "
                                            f"{core.config.max_payload} octets or less")
            return web.Response(status=resp.status, body=resp.body, headers=resp.headers)
        except ConnectionResetError:  # the sender went away mid-body: nobody to answer
            return web.Response(status=400)
        req = HttpRequest(request.method, request.path_qs, list(request.headers.items()), body)
        out: PushOutcome = core.process(req, f"{request.scheme}://{request.host}")
        if out.disconnect == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        hub.dispatch(out.actions)
        if out.delay > 0:
            await asyncio.sleep(out.delay)
        resp = out.response
        headers = {k: v for k, v in resp.headers.items() if k not in _HOP_BY_HOP}
        response = web.Response(status=resp.status, body=resp.body, headers=headers)
        if out.disconnect == "close":
            response.force_close()
        return response

    return handle


def make_ws_handler(core: WebPushCore, hub: WsHub):  # noqa: ANN201 - aiohttp handler
    """The user agent's websocket: frames to a ServerConnection, actions to the hub."""

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, autoping=True,
                                   protocols=("push-notification",))  # what Firefox asks for
        if not ws.can_prepare(request).ok:
            resp = error_response(404, 102, "Invalid URL endpoint")
            return web.Response(status=404, body=resp.body, headers=resp.headers)
        await ws.prepare(request)
        conn = hub.new_id()
        session = ServerConnection(core, conn)
        hub.add(conn, ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    hub.dispatch(session.receive(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    hub.dispatch(session.receive(b"\x00binary frame"))
                else:
                    log.warning("webpush: connection %s ended: %s", conn, msg.data)
                    break
                if session.closed:
                    break
        finally:
            hub.dispatch(session.connection_lost())
            await hub.remove(conn)
            if not ws.closed:
                await ws.close()
        return ws

    return websocket


def webpush_admin_routes(core: WebPushCore, hub: WsHub) -> list[web.RouteDef]:
    """Subscriptions (list, expire one), user agents, and telling a UA to back off."""

    async def subscriptions(request: web.Request) -> web.Response:
        state = request.query.get("state")
        subs = [s.to_dict() | {"endpoint": core.endpoint(s)}
                for s in core.subscriptions.values() if state in (None, s.state)]
        return web.json_response({"subscriptions": subs})

    async def expire(request: web.Request) -> web.Response:
        sub = core.expire_subscription(request.match_info["token"])
        if sub is None:
            return web.json_response({"error": "unknown subscription"}, status=404)
        return web.json_response(sub.to_dict())

    async def agents(_: web.Request) -> web.Response:
        return web.json_response({uaid: {"connected": uaid in core.uaid_conn,
                                         "urgency": s.urgency,
                                         "pending": len(core.store.pending(uaid))}
                                  for uaid, s in core.agents.items()})

    async def back_off(request: web.Request) -> web.Response:
        body = await json_object(request)
        uaid = body.get("uaid")
        if uaid is not None and not isinstance(uaid, str):
            return web.json_response({"error": 'give {"uaid": "..."} or {} for all'},
                                     status=400)
        targets = [uaid] if uaid else list(core.uaid_conn)
        closed = [u for u in targets if u in core.uaid_conn]
        for u in targets:
            hub.dispatch(core.back_off(u))
        return web.json_response({"closed": closed, "code": 4774})

    return [
        web.get("/admin/subscriptions", subscriptions),
        web.post("/admin/subscriptions/{token}/expire", expire),
        web.get("/admin/agents", agents),
        web.post("/admin/backoff", back_off),
        store_route(core.store),
    ]


def build_app(core: WebPushCore, hub: WsHub | None = None, *, admin: bool = True,
              admin_token: str | None = None) -> web.Application:
    """The aiohttp application: admin API, the websocket at ``/`` and ``/ws``, and every
    other path through the core (so a wrong path or method gets autopush's JSON)."""
    hub = hub or WsHub()

    def reset() -> None:
        core.reset()

    if admin:
        app = admin_app(core.activity, core.faults, reset,
                        routes=webpush_admin_routes(core, hub), name="webpush",
                        token=admin_token)
    else:
        app = web.Application()
    app[HUB_KEY] = hub
    ws = make_ws_handler(core, hub)
    app.router.add_get("/", ws)
    app.router.add_get("/ws", ws)
    tail = "/{tail:(?!admin/).*}" if admin else "/{tail:.*}"
    app.router.add_route("*", tail, make_push_handler(core, hub))
    return app


HUB_KEY = web.AppKey("webpush_hub", WsHub)


@dataclass
class WebPushServer:
    """A running front end: where it listens and how to stop it."""

    runner: web.AppRunner
    core: WebPushCore
    hub: WsHub
    host: str
    port: int
    scheme: str = "http"
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return ("wss" if self.scheme == "https" else "ws") + self.url[len(self.scheme):] + "/"

    async def close(self) -> None:
        await self.runner.shutdown()
        await self.runner.cleanup()


async def start_webpush_server(core: WebPushCore, *, host: str = "127.0.0.1", port: int = 0,
                               ssl_context: ssl.SSLContext | None = None, admin: bool = True,
                               admin_token: str | None = None,
                               public_url: str | None = None) -> WebPushServer:
    """Serve ``core`` on ``host:port`` (0: any free port) until ``close()``.

    Endpoints handed to browsers name ``public_url``, by default this server's own URL.
    """
    hub = WsHub()
    runner = web.AppRunner(build_app(core, hub, admin=admin, admin_token=admin_token),
                           access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets \
        else port
    out = WebPushServer(runner, core, hub, host, bound, "https" if ssl_context else "http")
    core.config.public_url = public_url or out.url
    return out
