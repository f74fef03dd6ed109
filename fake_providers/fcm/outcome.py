"""What the FCM core hands its front end: the response and what to do around it."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.core.http import HttpResponse


@dataclass(slots=True)
class FcmOutcome:
    """A response plus the front end's part: wait ``delay`` first, maybe end the connection."""

    response: HttpResponse
    delay: float = 0.0
    disconnect: str | None = None  # None | "close" (answer, then close) | "drop" (no answer)
    accepted: bool = False
