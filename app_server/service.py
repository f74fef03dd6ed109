"""The app server: installs and users, sending through the providers, polling inboxes.

This is the part a back-end engineer writes, with the rules the providers
impose: a token is an install's, not a user's (login and logout move it);
failed sends are retried only where the provider's answer allows it, with
exponential backoff, jitter and ``Retry-After``; tokens the provider calls dead
are pruned; a canonical id replaces the stored token. The REST API
(:mod:`app_server.api`) and the sim world are thin shells on :class:`AppServer`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app_server.retry import RetryPolicy
from app_server.senders import InvalidNotification, Notification, SendResult
from app_server.store import InboxItem, Install, MemoryTokenStore, TokenStore
from simulator.core.http import HttpRequest
from simulator.core.trace import EventKind, Trace


class Sender(Protocol):
    """Builds a provider request (whose id the trace can follow), then sends it."""

    provider: str

    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        ...

    def message_id(self, req: HttpRequest) -> str: ...

    async def send_request(self, req: HttpRequest) -> SendResult: ...


@dataclass
class SendStats:
    """Counters for reports and the REST API's ``/v1/stats``."""

    sent: int = 0
    accepted: int = 0
    failed: int = 0
    retries: int = 0
    gave_up: int = 0
    unknown: int = 0  # given up without an answer after a request that may have landed
    pruned: int = 0
    replaced: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


NOT_SENT = 0  # a SendResult status: the app server had no way to send it


@dataclass
class AppServer:
    """Ties tokens to installs and installs to users; sends with the providers' rules."""

    senders: dict[str, Sender]  # by platform: "ios" -> APNs, "android" -> FCM
    clock: Callable[[], float]
    trace: Trace
    store: TokenStore = field(default_factory=MemoryTokenStore)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    pruned: list[str] = field(default_factory=list)
    stats: SendStats = field(default_factory=SendStats)
    _next_inbox: int = 0

    # installs, users, sessions ----------------------------------------------------
    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> Install:
        """Store the token an app just got (at every launch); a change is a refresh."""
        before = [i.token for i in self.store.for_device(device_id) if i.app_id == app_id]
        inst = self.store.upsert(device_id, app_id, platform, token, user, self.clock())
        if self.trace.active:
            self.trace.emit(EventKind.TOKEN_STORED, device=device_id, app=app_id, user=user,
                            token=token, refreshed=bool(before and before[0] not in (None, token)))
        topics = self.store.subscriptions(device_id, app_id)
        if topics and (not before or before[0] != token):
            await self._subscribe(inst, topics)
        return inst

    def login(self, device_id: str, user: str) -> list[Install]:
        return self.store.set_user(device_id, user, self.clock())

    def logout(self, device_id: str) -> list[Install]:
        return self.store.set_user(device_id, None, self.clock())

    async def subscribe(self, device_id: str, app_id: str, topic: str) -> None:
        """Remember that an install follows ``topic``; subscribe its token if it has one."""
        self.store.add_subscription(device_id, app_id, topic)
        for inst in self.store.for_device(device_id):
            if inst.app_id == app_id and inst.token:
                await self._subscribe(inst, [topic])

    async def _subscribe(self, inst: Install, topics: list[str]) -> None:
        sender = self.senders.get(inst.platform)
        if sender is None or not hasattr(sender, "subscribe") or inst.token is None:
            return
        for topic in topics:
            errors = await sender.subscribe([inst.token], topic)  # type: ignore[attr-defined]
            if self.trace.active:
                self.trace.emit(EventKind.SUBSCRIBE, device=inst.device_id,
                                app=inst.app_id, topic=topic, error=errors[0] if errors else None)

    # sending ---------------------------------------------------------------------------
    async def send_to_user(self, user: str, note: Notification,
                           app_id: str | None = None) -> list[SendResult]:
        """Every install the user is logged in on (all their devices), in parallel."""
        installs = [i for i in self.store.for_user(user)
                    if app_id is None or i.app_id == app_id]
        if not installs and self.trace.active:
            self.trace.emit(EventKind.NO_TARGET, user=user, app=app_id)
        return await self._send_all(installs, note, user)

    async def send_to_device(self, device_id: str, note: Notification,
                             app_id: str | None = None) -> list[SendResult]:
        installs = [i for i in self.store.for_device(device_id)
                    if i.token and (app_id is None or i.app_id == app_id)]
        return await self._send_all(installs, note, None)

    async def _send_all(self, installs: list[Install], note: Notification,
                        user: str | None) -> list[SendResult]:
        if len(installs) == 1:
            return [await self.send_to_install(installs[0], note, user)]
        return list(await asyncio.gather(*(self.send_to_install(i, note, user)
                                           for i in installs)))

    async def send_to_install(self, inst: Install, note: Notification,
                              user: str | None = None) -> SendResult:
        sender = self.senders.get(inst.platform)
        assert inst.token is not None
        token = inst.token
        if sender is None:  # e.g. an app server run with APNs credentials only
            return SendResult("", token, NOT_SENT, f"no {inst.platform} sender configured")
        try:
            req = sender.build(token, note, inst.app_id)
        except InvalidNotification as exc:
            return self._refused(token, str(exc))
        msg = sender.message_id(req)
        if self.trace.active:
            self.trace.emit(EventKind.SENT, msg=msg, user=user or inst.user,
                            device=inst.device_id, app=inst.app_id, provider=sender.provider,
                            priority=note.priority, collapse=note.collapse_key)
        result = await self._with_retries(sender, req, msg)
        self._after(result, token, inst)
        return result

    async def send_to_topic(self, topic: str, note: Notification) -> SendResult:
        """An FCM topic message: FCM fans it out to every subscribed token."""
        sender = self.senders.get("android")
        if sender is None or not hasattr(sender, "build_topic"):
            raise LookupError("topic messages need an FCM sender")
        try:
            req = sender.build_topic(topic, note)  # type: ignore[attr-defined]
        except InvalidNotification as exc:
            return self._refused(f"/topics/{topic}", str(exc))
        msg = sender.message_id(req)
        if self.trace.active:
            self.trace.emit(EventKind.SENT, msg=msg, topic=topic, provider=sender.provider,
                            priority=note.priority, collapse=note.collapse_key)
        return await self._with_retries(sender, req, msg)

    def _refused(self, target: str, why: str) -> SendResult:
        """A notification that cannot be sent as asked: failed at once, never retried."""
        self.stats.failed += 1
        return SendResult("", target, NOT_SENT, why, malformed=True, attempts=0)

    async def _with_retries(self, sender: Sender, req: HttpRequest, msg: str) -> SendResult:
        """Send ``req`` until accepted or the policy stops; every attempt is the same request
        (same apns-id), so a phone can drop what an earlier, timed-out attempt delivered."""
        attempt = 1
        maybe_delivered = False
        while True:
            self.stats.sent += 1
            result = await sender.send_request(req)
            result.attempts = attempt
            maybe_delivered = maybe_delivered or result.maybe_delivered
            delay = None if result.malformed else self.retry.decide(
                attempt, result.status, result.retry_after, self.rng)
            if delay is None:
                break
            self.stats.retries += 1
            if self.trace.active:
                self.trace.emit(EventKind.RETRY, msg=msg, attempt=attempt,
                                status=result.status, reason=result.reason,
                                retry_after=result.retry_after, delay=round(delay, 6))
            await asyncio.sleep(delay)
            attempt += 1
        if result.ok:
            self.stats.accepted += 1
            if result.provider_msg_id and self.trace.active:
                self.trace.emit(EventKind.PROVIDER_ID, msg=msg,
                                provider_msg=result.provider_msg_id)
        else:
            gave_up = self.retry.retryable(result.status) and not result.malformed
            self.stats.gave_up += gave_up
            # A definite rejection (4xx) outranks an earlier timeout: it was not delivered.
            result.maybe_delivered = maybe_delivered and gave_up
            if result.maybe_delivered:
                self.stats.unknown += 1
            else:
                self.stats.failed += 1
            if self.trace.active:
                self.trace.emit(EventKind.SEND_FAILED, msg=msg, attempts=attempt,
                                status=result.status, reason=result.reason, gave_up=gave_up,
                                outcome=result.outcome)
        return result

    def _after(self, result: SendResult, token: str, inst: Install) -> None:
        if result.token_dead:
            self.store.prune_token(token)
            self.pruned.append(token)
            self.stats.pruned += 1
            if self.trace.active:
                self.trace.emit(EventKind.TOKEN_PRUNED, token=token, device=inst.device_id,
                                app=inst.app_id, reason=result.reason)
        elif result.canonical_token and result.canonical_token != token:
            self.store.replace_token(token, result.canonical_token, self.clock())
            self.stats.replaced += 1
            if self.trace.active:
                self.trace.emit(EventKind.TOKEN_REPLACED, device=inst.device_id,
                                app=inst.app_id, old=token, new=result.canonical_token)

    # polling apps -------------------------------------------------------------------
    def post_to_inbox(self, user: str, device_id: str, app_id: str,
                      payload: dict[str, Any]) -> InboxItem:
        """Queue news for one polling install of ``user`` (each install fetches its own)."""
        self._next_inbox += 1
        item = InboxItem(f"poll-{self._next_inbox}", self.clock(), payload)
        self.store.push_inbox(user, device_id, app_id, item)
        if self.trace.active:
            self.trace.emit(EventKind.SENT, msg=item.msg_id, user=user, device=device_id,
                            app=app_id, via="poll")
        return item

    async def poll(self, *, user: str | None, device_id: str, app_id: str) -> list[dict[str, Any]]:
        if user is None:
            return []
        items = self.store.take_inbox(user, device_id, app_id)
        return [{"msg_id": i.msg_id, "created_at": i.created_at, "payload": i.payload}
                for i in items]
