"""The Web Push service on the in-memory network (sim mode): the same protocol objects.

In a live run a browser's frames travel over an aiohttp websocket; in simulated
time they travel over a :class:`~simulator.core.network.Connection` of the
in-memory network, priced on the device's radio like any other bytes.
:class:`MemoryWebPushGateway` listens for such connections under a service name,
gives each a :class:`~fake_providers.webpush.protocol.ServerConnection`, and
carries the core's actions back: a :class:`~fake_providers.webpush.core.Send`
becomes a text frame down the connection, a ``Close`` becomes a :class:`WsClosed`
frame (with its code, e.g. 4774 to back off), after which the service ignores
that connection; the browser closes its end when the frame arrives.

Frames are the protocol's JSON text, so a simulated browser drives
:class:`~fake_providers.webpush.protocol.UserAgentClient` exactly as over a socket.
Pushes sent through the in-memory HTTP transport (``MemoryTransport(core.handle)``)
reach connected browsers through :attr:`WebPushCore.on_actions`, which the gateway sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from fake_providers.webpush.core import Action, Close, Send, WebPushCore
from fake_providers.webpush.protocol import ServerConnection, encode
from simulator.core.network import Connection, Network

WS_OVERHEAD = 6  # websocket frame header (server frames: 2-4 octets) plus TLS record bytes


@dataclass(frozen=True, slots=True)
class WsClosed:
    """The service closed the websocket with ``code`` (the browser sees it, then FIN)."""

    code: int
    reason: str = ""


def frame_cause(message: dict) -> str:
    """What a server frame's bytes are charged to on the device's radio."""
    kind = message.get("messageType")
    if kind == "notification":
        return "push"
    return "heartbeat" if not message else "control"


class MemoryWebPushGateway:
    """Accepts browsers' connections to ``service`` and runs the protocol for each."""

    def __init__(self, network: Network, service: str, core: WebPushCore) -> None:
        self.core = core
        self.service = service
        self.connections: dict[str, tuple[Connection, ServerConnection]] = {}
        core.on_actions = self.dispatch
        network.listen(service, self._accept)

    def _accept(self, conn: Connection) -> None:
        name = f"mem{conn.conn_id}"
        session = ServerConnection(self.core, name)
        self.connections[name] = (conn, session)
        conn.on_server_frame = lambda frame: self._frame(name, frame)
        conn.on_server_closed = lambda: self._closed(name)

    def _frame(self, name: str, frame: object) -> None:
        entry = self.connections.get(name)
        if entry is None:
            return
        text = frame if isinstance(frame, str | bytes) else b"\x00not a text frame"
        self.dispatch(entry[1].receive(text))

    def _closed(self, name: str) -> None:
        entry = self.connections.pop(name, None)
        if entry is not None:
            self.dispatch(entry[1].connection_lost())

    def dispatch(self, actions: list[Action]) -> None:
        """Carry core actions to their connections."""
        for action in actions:
            entry = self.connections.get(action.conn)
            if entry is None:
                continue
            conn, session = entry
            if isinstance(action, Send):
                text = encode(action.message)
                conn.send_down(text, len(text.encode()) + WS_OVERHEAD,
                               frame_cause(action.message))
            elif isinstance(action, Close):
                # the browser closes its end when this arrives; frames after it are ignored
                conn.send_down(WsClosed(action.code, action.reason), WS_OVERHEAD, "control")
                del self.connections[action.conn]
                self.dispatch(session.connection_lost())
