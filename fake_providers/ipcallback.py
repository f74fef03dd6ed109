"""The provider side of the ip-callback model (the 2014 article's design), sim mode.

The device keeps no connection. It reports its address on a short connection
(``ReportAddress``, then any ``Register`` frames) and hangs up; to deliver, the
provider dials the last address it was told. This module exists so the lab can
show *why* real push services stopped working this way:

* behind a carrier NAT the dial is refused (``"nat"``): nothing gets in;
* after an address change the device did not (or could not) report, the dial
  finds nobody (``"unreachable"``);

Either way the message stays in the store (it is not lost yet) and the trace
says why it did not go: a ``dropped``-free ``note`` with ``callback_failed`` and
the reason. The next report that reaches the provider flushes the queue, so a
message waits exactly as long as the device's address stays unknown.

A successful dial counts as the delivery's acknowledgement: the TCP handshake
reached the device and the frame followed it (the model has no separate ack).
"""

from __future__ import annotations

from fake_providers.backend import PushBackend
from fake_providers.gateway import MemorySession
from fake_providers.store import DeviceState
from simulator.core import devicelink as dl
from simulator.core.network import Connection, Network
from simulator.core.trace import EventKind


class CallbackSession:
    """What the backend sees for an ip-callback device: sending means dialling."""

    __slots__ = ("device_id", "address", "network", "backend", "failures")

    def __init__(self, device_id: str, address: str, network: Network,
                 backend: PushBackend) -> None:
        self.device_id = device_id
        self.address = address
        self.network = network
        self.backend = backend
        self.failures = 0

    def send(self, msg: object) -> None:
        size = dl.wire_size(msg)
        outcome = self.network.dial(self.address, msg, size)
        backend = self.backend
        if outcome == "delivered":
            if type(msg) is dl.Push:
                if backend.store.ack(self.device_id, msg.msg_id) is not None:
                    backend.acked += 1
            return
        self.failures += 1
        if backend.trace.active:
            backend.trace.emit(EventKind.CALLBACK_FAILED, provider=backend.name, device=self.device_id,
                               msg=getattr(msg, "msg_id", None), callback_failed=outcome,
                               address=self.address,
                               why=_WHY.get(outcome, outcome))

    def close(self) -> None:
        return None


_WHY = {
    "nat": "the address is behind a NAT that refuses inbound connections",
    "unreachable": "nobody listens at the last reported address (it changed unreported)",
}


class _ReportSession(MemorySession):
    """The short connection on which a device reports its address and registers."""

    __slots__ = ("gateway",)

    def __init__(self, conn: Connection, gateway: IpCallbackGateway) -> None:
        super().__init__(conn, gateway.backend)
        self.gateway = gateway

    def _frame(self, msg: object) -> None:
        if type(msg) is dl.ReportAddress:
            self.device_id = msg.device_id
            self.gateway.reported(self, msg)
        elif self.device_id:
            self.backend.on_frame(self, msg)

    def _closed(self) -> None:
        return None  # hanging up is normal here; the callback session stays


class IpCallbackGateway:
    """Accepts address reports for one provider; installs a dialling session per device."""

    def __init__(self, network: Network, service: str, backend: PushBackend) -> None:
        self.network = network
        self.service = service
        self.backend = backend
        self.addresses: dict[str, str] = {}
        network.listen(service, self._accept)

    def _accept(self, conn: Connection) -> None:
        _ReportSession(conn, self)

    def reported(self, report: _ReportSession, msg: dl.ReportAddress) -> None:
        backend = self.backend
        now = backend.clock()
        self.addresses[msg.device_id] = msg.address
        session = CallbackSession(msg.device_id, msg.address, self.network, backend)
        backend.sessions[msg.device_id] = session
        state = backend.devices.get(msg.device_id)
        if state is None:
            state = backend.devices[msg.device_id] = DeviceState()
        state.last_activity = now
        if backend.trace.active:
            backend.trace.emit(EventKind.CONNECTED, provider=backend.name, device=msg.device_id,
                               address=msg.address, via="ip-callback report")
        report.send(dl.HelloAck(msg.device_id))
        backend.flush(msg.device_id)
