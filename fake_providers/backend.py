"""The provider's device side: who is connected, what is owed, and forwarding.

A :class:`PushBackend` is shared by a provider's front ends. The provider core
validates a request and calls :meth:`PushBackend.accept`; the device gateway
(in-memory connections in sim mode, MQTT in live mode) feeds device frames into
:meth:`PushBackend.on_frame`. It is sans-IO: time comes from ``clock``, frames
leave through the :class:`Session` objects the gateway hands in.

Store-and-forward is decided here and nowhere else: the store's policy says what
is kept and held, the store keeps the queues and release timers, and
:meth:`PushBackend.uninstall` is the one place an uninstalled app instance is
forgotten (its messages, what the policy owed it, and every ``uninstall_hooks``
listener such as FCM's topic registry).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from fake_providers.registry import TokenRegistry
from fake_providers.store import DeviceState, Envelope, StoreAndForward
from simulator.core import devicelink as dl
from simulator.core.trace import EventKind, Trace


class Session(Protocol):
    """One live device connection as the gateway sees it."""

    device_id: str

    def send(self, msg: object) -> None: ...

    def close(self) -> None: ...


class PushBackend:
    """Registry + store-and-forward + the sessions of connected devices."""

    def __init__(self, name: str, registry: TokenRegistry, store: StoreAndForward,
                 clock: Callable[[], float], trace: Trace) -> None:
        self.name = name
        self.registry = registry
        self.store = store
        self.clock = clock
        self.trace = trace
        self.sessions: dict[str, Session] = {}
        self.devices: dict[str, DeviceState] = {}
        # called with a token once its app instance is uninstalled (e.g. topic registries)
        self.uninstall_hooks: list[Callable[[str], None]] = []
        self._conns: dict[str, tuple[Session, int]] = {}  # device -> (session, its number)
        self._conn_seq = itertools.count(1)
        self._rule_held: set[str] = set()  # messages whose hold the trace has named
        self.heartbeats = 0
        self.forwarded = 0
        self.acked = 0
        # accepted messages that left the store other than by an ack, by why (collapsed,
        # dropped, expired...): with ``acked`` and what is still stored, every accepted one
        self.settled: Counter[str] = Counter()

    # from the provider core ---------------------------------------------------
    def accept(self, env: Envelope) -> None:
        """Take an accepted notification: forward it now, keep it, or drop it."""
        now = self.clock()
        trace = self.trace
        session = self.sessions.get(env.device_id)
        if env.now_or_never and session is None:
            self.settled[EventKind.DROPPED] += 1
            if trace.active:
                trace.emit(EventKind.DROPPED, provider=self.name, msg=env.msg_id,
                           device=env.device_id, reason="offline and expiration 0")
            return
        for old, why in self.store.put(env, now):
            self.settled[why] += 1
            if trace.active:
                trace.emit(why, provider=self.name, msg=old.msg_id, device=old.device_id,
                           by=env.msg_id)
        if session is not None:
            state = self.devices.get(env.device_id)
            if state is None or not self._held(env, state, now):
                self._forward(session, env, now)
                if self.store.policy.woke(env, now) and self.store.unmark_held(env.device_id):
                    self.flush(env.device_id)  # held ones ride along with the wake-up
                return
        if trace.active:
            trace.emit(EventKind.STORED, provider=self.name, msg=env.msg_id,
                       device=env.device_id, online=session is not None)
        if session is not None:
            self.store.arm(env.device_id, now, self._release)

    def _held(self, env: Envelope, state: DeviceState, now: float) -> bool:
        if self.store.policy.hold(env, state, now):
            self.store.mark_held(env.device_id)
            rule = getattr(self.store.policy, "hold_rule", None)  # e.g. FCM's "doze"
            if rule is not None and env.msg_id not in self._rule_held and self.trace.active:
                self._rule_held.add(env.msg_id)
                self.trace.emit(EventKind.RULE, device=env.device_id, rule=rule, effect="held",
                                msg=env.msg_id, app=env.app_id, provider=self.name,
                                reason="normal priority waits while the phone dozes")
            return True
        if self._rule_held:
            self._rule_held.discard(env.msg_id)
        return False

    def _release(self, device_id: str) -> None:
        """A release timer fired: flush, and look again later if something is still held."""
        self.flush(device_id)
        if device_id in self.store.holding and device_id in self.sessions:
            self.store.arm(device_id, self.clock(), self._release)

    def _conn_number(self, session: Session) -> int:
        """A number per connection, so an envelope remembers where it went without
        holding the connection itself."""
        known = self._conns.get(session.device_id)
        if known is not None and known[0] is session:
            return known[1]
        number = next(self._conn_seq)
        self._conns[session.device_id] = (session, number)
        return number

    def _forward(self, session: Session, env: Envelope, now: float) -> None:
        env.conn = self._conn_number(session)  # so a later flush on this connection skips it
        env.forwarded_at = now
        env.attempts += 1
        self.forwarded += 1
        if self.trace.active:
            self.trace.emit(EventKind.FORWARDED, provider=self.name, msg=env.msg_id,
                            device=env.device_id, attempt=env.attempts)
        session.send(dl.Push(env.msg_id, env.token, env.app_id, env.payload, env.priority,
                             env.collapse_key, env.accepted_at, env.size))

    def flush(self, device_id: str) -> None:
        """Send everything owed to a connected device that its state lets through."""
        session = self.sessions.get(device_id)
        if session is None:
            return
        now = self.clock()
        self._expire(device_id, now)
        for notice in self.store.policy.take_notices(device_id):  # FCM's deleted messages
            if self.trace.active:
                self.trace.emit(EventKind.NOTICE, provider=self.name, device=device_id,
                                notice=notice.kind, app=notice.app_id)
            session.send(notice)
        pending = self.store.pending(device_id)
        if not pending:
            return
        state = self.devices.get(device_id) or DeviceState()
        conn = self._conn_number(session)
        for env in pending:
            if env.forwarded_at is not None and env.attempts and env.conn == conn:
                continue  # already on this connection, waiting for its ack
            if not self._held(env, state, now):
                self._forward(session, env, now)

    def _expire(self, device_id: str, now: float) -> None:
        for env in self.store.take_expired(device_id, now):
            self.settled[EventKind.EXPIRED] += 1
            if self.trace.active:
                self.trace.emit(EventKind.EXPIRED, provider=self.name, msg=env.msg_id,
                                device=device_id)

    def expire_all(self) -> None:
        """Sweep every queue (end of a run), so expiries show up in the trace."""
        now = self.clock()
        for device_id in list(self.store.queues):
            self._expire(device_id, now)

    def uninstall(self, device_id: str, app_id: str) -> None:
        """Forget an app instance everywhere: token, queued messages, what is owed to it."""
        record = self.registry.unregister_install(device_id, app_id, self.clock())
        if record is None:
            return
        for env in self.store.drop_token(record.token):
            self.settled[EventKind.DROPPED] += 1
            if self.trace.active:
                self.trace.emit(EventKind.DROPPED, provider=self.name, msg=env.msg_id,
                                device=device_id, reason="app uninstalled")
        self.store.policy.forget(record.token)
        for hook in self.uninstall_hooks:
            hook(record.token)

    # from the device gateway --------------------------------------------------
    def on_frame(self, session: Session, msg: object) -> None:
        now = self.clock()
        device_id = session.device_id
        state = self.devices.get(device_id)
        if state is not None:
            state.last_activity = now
        if isinstance(msg, dl.Ping):
            self.heartbeats += 1
            session.send(dl.Pong(msg.seq))
        elif isinstance(msg, dl.Ack):
            env = self.store.ack(device_id, msg.msg_id)
            if env is not None:
                self.acked += 1
        elif isinstance(msg, dl.Hello):
            self._hello(session, msg, now)
        elif isinstance(msg, dl.Register):
            record = self.registry.issue(device_id, msg.app_id, msg.environment, now)
            if self.trace.active:
                self.trace.emit(EventKind.TOKEN_REGISTERED, provider=self.name,
                                device=device_id, app=msg.app_id, token=record.token)
            session.send(dl.Registered(msg.app_id, record.token))
        elif isinstance(msg, dl.Unregister):
            self.uninstall(device_id, msg.app_id)
        elif isinstance(msg, dl.Status):
            self.devices.setdefault(device_id, DeviceState()).dozing = msg.dozing
            self.flush(device_id)

    def _hello(self, session: Session, msg: dl.Hello, now: float) -> None:
        previous = self.sessions.get(msg.device_id)
        if previous is not None and previous is not session:
            previous.close()
        self.sessions[msg.device_id] = session
        state = self.devices.setdefault(msg.device_id, DeviceState())
        state.last_activity = now
        if self.trace.active:
            self.trace.emit(EventKind.CONNECTED, provider=self.name, device=msg.device_id,
                            address=msg.address)
        session.send(dl.HelloAck(msg.device_id))
        self.flush(msg.device_id)

    def on_closed(self, session: Session) -> None:
        """The gateway saw the connection end (FIN, or the broker said so)."""
        known = self._conns.get(session.device_id)
        if known is not None and known[0] is session:
            del self._conns[session.device_id]
        if self.sessions.get(session.device_id) is session:
            del self.sessions[session.device_id]
            if self.trace.active:
                self.trace.emit(EventKind.DISCONNECTED, provider=self.name,
                                device=session.device_id)
