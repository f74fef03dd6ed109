"""When a live run may stop: the timeline has made every send, and every message sent
has reached a final fate.

A live run is real time, so it stops as soon as nothing more can happen rather
than at the scenario's duration. Two things must both hold:

* :func:`timeline_end`: the last moment the timeline schedules a send, a ``send``
  with ``count``/``every`` included (its last repetition, not its first);
* :class:`Settled`: every message sent so far has had a final event. The app
  server names a message; FCM's hops carry FCM's own name, joined through
  ``provider_id`` (:class:`~simulator.core.msgids.MessageIds`), which may arrive
  after the hop it names. A topic send settles once as many of its deliveries
  (``<provider id>/<n>``) have had a final event as FCM's ``accepted`` says it reached.

Sans-IO: fed trace events, asked questions; :mod:`simulator.live.world` does the waiting.
"""

from __future__ import annotations

from simulator.core.events import ProviderId, TraceEvent
from simulator.core.fate import FINAL_KINDS
from simulator.core.msgids import MessageIds
from simulator.core.trace import EventKind
from simulator.scenario import Scenario

_FINAL = frozenset({*FINAL_KINDS, EventKind.SEND_FAILED}) - {EventKind.REJECTED}


def timeline_end(scenario: Scenario) -> float:
    """Scenario seconds of the timeline's last scheduled action, a send's repeats included."""
    end = 0.0
    for entry in scenario.timeline:
        name, action = entry.action
        at = entry.at
        if name == "send":
            at += (action.count - 1) * action.every
        end = max(end, at)
    return end


def _retryable(status: object) -> bool:
    """Whether the app server may send a rejected message again (5xx and 429)."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def is_final(event: TraceEvent) -> bool:
    """Whether nothing more will happen to the event's message on its way.

    ``handed``, ``expired``, ``dropped``, ``collapsed``, ``send_failed``, a
    ``rejected`` the app server will not retry, and a phone's ``rule`` that
    dropped the message (e.g. a force-stopped app, a background budget that drops).
    """
    kind = event.kind
    if kind in _FINAL:
        return True
    if kind == EventKind.REJECTED:
        return not _retryable(getattr(event, "status", None))
    return kind == EventKind.RULE and getattr(event, "effect", None) == "dropped"


class Settled:
    """Whether every message sent so far has reached a final fate (a trace subscriber)."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.sent = 0
        self.ids = MessageIds()
        self._early: set[str] = set()  # final under a provider id not yet named
        self._topics: set[str] = set()  # open topic sends, by the app server's id
        self._reached: dict[str, int] = {}  # by the id ``accepted`` named: subscribers
        self._ended: dict[str, set[str]] = {}  # by that id: its deliveries already final

    def __call__(self, event: TraceEvent) -> None:
        if type(event) is ProviderId:
            learned = self.ids.learn(event)
            if learned is not None and learned[0] in self._early:
                self._early.discard(learned[0])
                self.open.discard(learned[1])
            return
        msg = getattr(event, "msg", None)
        if msg is None:
            return
        if event.kind == EventKind.SENT:
            self.sent += 1
            self.open.add(msg)
            if getattr(event, "topic", None) is not None:
                self._topics.add(msg)
        elif event.kind == EventKind.ACCEPTED and getattr(event, "reached", None) is not None:
            self._reached[msg] = event.reached  # type: ignore[attr-defined]
        elif "/" in msg and is_final(event):
            self._ended.setdefault(msg.partition("/")[0], set()).add(msg)
        elif is_final(event):
            cid = self.ids.canonical(msg)
            if cid in self.open:
                self.open.discard(cid)
            elif cid == msg:
                self._early.add(msg)  # perhaps FCM's name, noted a moment later

    def done(self) -> bool:
        for topic in [t for t in self._topics if t in self.open]:
            if self._topic_done(topic):
                self.open.discard(topic)
        return not self.open

    def _topic_done(self, topic: str) -> bool:
        """Whether every delivery FCM said a topic send reached has had its final event."""
        names = (topic, *self.ids.provider_ids(topic))
        reached = next((self._reached[n] for n in names if n in self._reached), None)
        ended = sum(len(self._ended.get(n, ())) for n in names)
        return reached is not None and ended >= reached
