"""The live run's sender: the shared open-loop pacing, each message a REST call.

The app server's ``/v1/send/device/<id>`` is called over keep-alive HTTP/1.1
(:class:`simulator.load.http1.Http1Pool`, at most ``inflight`` at once); each
answer is kept by sequence number, so the summary can say where an undelivered
message stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from simulator.load.harness import OpenLoop
from simulator.load.profiles import RateProfile
from simulator.load.stats import Latency
from simulator.load.worker import APP_ID, device_id


class Sender:
    """The live sending phase: :class:`OpenLoop` pacing, each message a POST to the app
    server's REST API, its answer kept by sequence number."""

    def __init__(self, url: str, api_key: str, devices: int, inflight: int,
                 phase: int = 0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.devices = devices
        self.inflight = inflight
        self.phase = str(phase)  # tags each message: a phase's numbers restart from 0
        self._head = '{"title":"load","body":"message '
        self._app = json.dumps(APP_ID)
        self._phase = json.dumps(self.phase)
        self.answered = 0
        self.accepted = 0
        self.errors = 0
        self.outcome: dict[int, tuple[int, str | None, str]] = {}
        self.start_wall = 0.0
        self.api_latency = Latency()  # scheduled send -> the app server's answer
        self.open_loop: OpenLoop | None = None
        self._http: Any = None

    @property
    def sent(self) -> int:
        return self.open_loop.sent if self.open_loop is not None else 0

    async def run(self, profile: RateProfile, start_wall: float, stop: asyncio.Event) -> None:
        from simulator.load.http1 import Http1Pool

        self.start_wall = start_wall
        self._http = Http1Pool(self.url, self.inflight, {"X-API-Key": self.api_key})
        self.open_loop = OpenLoop(profile, self._one, time.time)
        try:
            await self.open_loop.run(0.002, stop)
            await self.open_loop.settle(stop)
        finally:
            self._http.close()

    def body(self, seq: int, sent_at: float) -> bytes:
        """The message's JSON, as ``json.dumps`` writes these plain values (digits, a
        float's repr), without a dict and an encoder per message."""
        return (f'{self._head}{seq}","app":{self._app},"data":{{"seq":"{seq}",'
                f'"t":"{sent_at!r}","ph":{self._phase}}}}}').encode()

    async def _one(self, seq: int, sent_at: float) -> None:
        device = device_id(seq % self.devices)
        body = self.body(seq, sent_at)
        try:
            status, raw = await self._http.post_json(f"/v1/send/device/{device}", body, 180.0)
            answer = json.loads(raw.decode()) if raw else {}
            if status != 200:
                outcome = (status, str(answer.get("error")), "")
            elif not answer.get("results"):
                outcome = (404, "no token at the app server", "")
            else:
                r = answer["results"][0]
                # the provider's store knows a message by the provider's id
                outcome = (r["status"], r["reason"], r.get("provider_msg_id") or r["msg_id"])
        except Exception as exc:  # noqa: BLE001 - every failure is a figure
            outcome = (0, type(exc).__name__, "")
        self.answered += 1
        self.api_latency.record(time.time() - sent_at)
        self.outcome[seq] = outcome
        if outcome[0] == 200:
            self.accepted += 1
        else:
            self.errors += 1
