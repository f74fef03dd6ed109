"""The device gateway over the in-memory network (sim mode)."""

from __future__ import annotations

from fake_providers.backend import PushBackend
from simulator.core import devicelink as dl
from simulator.core.network import Connection, Network


class MemorySession:
    """A device connection as the backend sees it; frames go down the connection."""

    __slots__ = ("conn", "device_id", "backend")

    def __init__(self, conn: Connection, backend: PushBackend) -> None:
        self.conn = conn
        self.backend = backend
        self.device_id = ""
        conn.on_server_frame = self._frame
        conn.on_server_closed = self._closed

    def send(self, msg: object) -> None:
        cause = "push" if isinstance(msg, dl.Push) else (
            "heartbeat" if isinstance(msg, dl.Pong) else "control")
        self.conn.send_down(msg, dl.wire_size(msg), cause)

    def close(self) -> None:
        self.conn.abort_from_server()

    def _frame(self, msg: object) -> None:
        if type(msg) is dl.Hello:
            self.device_id = msg.device_id
        elif not self.device_id:
            return  # nothing before Hello
        self.backend.on_frame(self, msg)

    def _closed(self) -> None:
        if self.device_id:
            self.backend.on_closed(self)


class MemoryGateway:
    """Accepts device connections for one provider on the in-memory network."""

    def __init__(self, network: Network, service: str, backend: PushBackend) -> None:
        self.backend = backend
        self.service = service
        network.listen(service, self._accept)

    def _accept(self, conn: Connection) -> None:
        MemorySession(conn, self.backend)
