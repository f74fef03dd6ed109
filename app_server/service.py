"""The app server: installs and users, sending through the providers, polling inboxes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app_server.senders import Notification, SendResult
from app_server.store import Install, MemoryTokenStore
from simulator.core.http import HttpRequest
from simulator.core.trace import EventKind, Trace


class Sender(Protocol):
    """Builds a provider request (whose id the trace can follow), then sends it."""

    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        ...

    async def send_request(self, req: HttpRequest) -> SendResult: ...


@dataclass(slots=True)
class InboxItem:
    msg_id: str
    created_at: float
    payload: dict[str, Any]


@dataclass
class AppServer:
    """Ties tokens to users and sends; the REST API and senders are thin shells on it."""

    senders: dict[str, Sender]  # by platform: "ios" -> APNs, "android" -> FCM
    clock: Callable[[], float]
    trace: Trace
    store: MemoryTokenStore = field(default_factory=MemoryTokenStore)
    inboxes: dict[tuple[str, str], list[InboxItem]] = field(default_factory=dict)
    results: list[SendResult] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    _next_inbox: int = 0

    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> Install:
        inst = self.store.upsert(device_id, app_id, platform, token, user, self.clock())
        if self.trace.active:
            self.trace.emit(EventKind.TOKEN_STORED, device=device_id, app=app_id, user=user,
                            token=token)
        return inst

    def login(self, device_id: str, user: str) -> None:
        self.store.set_user(device_id, user, self.clock())

    def logout(self, device_id: str) -> None:
        self.store.set_user(device_id, None, self.clock())

    async def send_to_user(self, user: str, note: Notification,
                           app_id: str | None = None) -> list[SendResult]:
        results = []
        for inst in self.store.for_user(user):
            if app_id is not None and inst.app_id != app_id:
                continue
            results.append(await self.send_to_install(inst, note))
        return results

    async def send_to_install(self, inst: Install, note: Notification) -> SendResult:
        sender = self.senders[inst.platform]
        assert inst.token is not None
        req = sender.build(inst.token, note, inst.app_id)
        if self.trace.active:
            self.trace.emit(EventKind.SENT, msg=req.header("apns-id") or req.header("x-pushlab-id"),
                            user=inst.user, device=inst.device_id, app=inst.app_id)
        result = await sender.send_request(req)
        self.results.append(result)
        if result.token_dead:
            self.store.prune_token(inst.token)
            self.pruned.append(inst.token)
            if self.trace.active:
                self.trace.emit(EventKind.TOKEN_PRUNED, token=inst.token, device=inst.device_id,
                                app=inst.app_id, reason=result.reason)
        return result

    # polling apps -------------------------------------------------------------
    def post_to_inbox(self, user: str, app_id: str, payload: dict[str, Any]) -> InboxItem:
        self._next_inbox += 1
        item = InboxItem(f"poll-{self._next_inbox}", self.clock(), payload)
        self.inboxes.setdefault((user, app_id), []).append(item)
        if self.trace.active:
            self.trace.emit(EventKind.SENT, msg=item.msg_id, user=user, app=app_id, via="poll")
        return item

    async def poll(self, *, user: str | None, device_id: str, app_id: str) -> list[dict[str, Any]]:
        if user is None:
            return []
        items = self.inboxes.pop((user, app_id), [])
        return [{"msg_id": i.msg_id, "created_at": i.created_at, "payload": i.payload}
                for i in items]
