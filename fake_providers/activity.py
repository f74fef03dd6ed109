"""What a provider look-alike was asked and what it answered, for tests and the admin API.

Mock-server users' first wish is to see exactly what was sent: headers, payload,
the status and reason given back. :class:`ActivityLog` keeps the newest
``limit`` requests (older ones fall off, so a long run stays bounded). Payloads
are kept as raw bytes and only decoded when someone reads them.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class ActivityEntry:
    """One request and its answer."""

    time: float
    provider: str
    accepted: bool
    status: int
    reason: str | None
    method: str
    path: str
    token: str | None
    msg_id: str | None
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def outcome(self) -> str:
        return "accepted" if self.accepted else "rejected"

    @property
    def payload(self) -> Any:
        """The body as JSON when it parses, else as text."""
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", "replace")

    def to_dict(self) -> dict[str, Any]:
        hidden = {"authorization"}
        return {
            "time": self.time, "provider": self.provider, "outcome": self.outcome,
            "status": self.status, "reason": self.reason, "method": self.method,
            "path": self.path, "token": self.token, "id": self.msg_id,
            "headers": {k: ("<redacted>" if k.lower() in hidden else v)
                        for k, v in self.headers},
            "payload": self.payload,
        }


class ActivityLog:
    """A bounded record of requests, newest last."""

    def __init__(self, limit: int = 10_000, provider: str = "") -> None:
        self.provider = provider
        self.entries: deque[ActivityEntry] = deque(maxlen=limit)
        self.accepted_count = 0
        self.rejected_count = 0

    def record(self, time: float, accepted: bool, status: int, reason: str | None,
               method: str, path: str, token: str | None, msg_id: str | None,
               headers: list[tuple[str, str]], body: bytes) -> None:
        if accepted:
            self.accepted_count += 1
        else:
            self.rejected_count += 1
        self.entries.append(ActivityEntry(time, self.provider, accepted, status, reason,
                                          method, path, token, msg_id, headers, body))

    def select(self, outcome: str | None = None, token: str | None = None,
               reason: str | None = None, limit: int | None = None) -> list[ActivityEntry]:
        """Entries filtered by outcome (``accepted``/``rejected``), token and reason."""
        out = [e for e in self.entries
               if (outcome is None or e.outcome == outcome)
               and (token is None or e.token == token)
               and (reason is None or e.reason == reason)]
        return out[-limit:] if limit else out

    @property
    def accepted(self) -> list[ActivityEntry]:
        return self.select("accepted")

    @property
    def rejected(self) -> list[ActivityEntry]:
        return self.select("rejected")

    def clear(self) -> None:
        self.entries.clear()
        self.accepted_count = 0
        self.rejected_count = 0

    def summary(self) -> dict[str, int]:
        return {"accepted": self.accepted_count, "rejected": self.rejected_count,
                "kept": len(self.entries)}

    def __len__(self) -> int:
        return len(self.entries)
