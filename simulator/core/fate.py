"""What became of a message: one name per fate, and the one rule that decides it.

The reports, the dashboard and the load summaries all read a message's fate
here, from the kinds of the events it went through (see
:class:`simulator.core.msgids.MessageIds` for how its hops are joined into one
life whatever the provider called it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from simulator.core.events import EventKind


class Fate(StrEnum):
    """The furthest a message got, best first."""

    HANDED = "handed"          # the app took it
    NOT_HANDED = "not_handed"  # the daemon got it, no app took it
    DROPPED_BY_RULE = "dropped_by_rule"  # a platform rule on the phone threw it away
    REJECTED = "rejected"      # the app server gave up sending it
    EXPIRED = "expired"
    COLLAPSED = "collapsed"
    DROPPED = "dropped"
    IN_FLIGHT = "in_flight"    # forwarded to the device, never acknowledged
    STORED = "stored"          # waiting in the provider's store or the app's inbox
    ACCEPTED = "accepted"
    SENT = "sent"

    @property
    def settled(self) -> bool:
        """Nothing more will happen to the message."""
        return self not in _UNSETTLED

    @property
    def lost(self) -> bool:
        """The provider threw it away."""
        return self in _LOST


_UNSETTLED = frozenset({Fate.IN_FLIGHT, Fate.STORED, Fate.ACCEPTED, Fate.SENT})
_LOST = frozenset({Fate.EXPIRED, Fate.COLLAPSED, Fate.DROPPED})

HOPS: tuple[EventKind, ...] = (
    EventKind.SENT, EventKind.ACCEPTED, EventKind.REJECTED, EventKind.STORED,
    EventKind.COLLAPSED, EventKind.EXPIRED, EventKind.DROPPED, EventKind.FORWARDED,
    EventKind.DELIVERED, EventKind.HANDED)
"""The kinds that are a hop of a message's life (its ``msg`` names the message)."""

FINAL_KINDS: tuple[EventKind, ...] = (EventKind.HANDED, EventKind.REJECTED, EventKind.EXPIRED,
                                      EventKind.DROPPED, EventKind.COLLAPSED)
"""Hops after which a message goes no further (a ``rejected`` one unless it is retried)."""

LIFECYCLE_KINDS: tuple[EventKind, ...] = (EventKind.TOKEN_REGISTERED, EventKind.TOKEN_STORED,
                                          *HOPS)
"""A token's registration and every message hop: what must match between sim and live."""

HOP_RANK: dict[str, int] = {
    EventKind.SENT: 0, EventKind.ACCEPTED: 1, EventKind.REJECTED: 1,
    EventKind.STORED: 2, EventKind.COLLAPSED: 2, EventKind.EXPIRED: 2, EventKind.DROPPED: 2,
    EventKind.FORWARDED: 3, EventKind.DELIVERED: 4, EventKind.HANDED: 5,
}
"""Lifecycle order: a message is sent, then accepted, stored, forwarded, delivered, handed.
Parts of the world emit hops of one instant in their own order (FCM reports
``forwarded`` before ``accepted``), so hops of one instant sort by this rank
(any other event of the message ranks 1)."""

_BY_HOP = ((EventKind.HANDED, Fate.HANDED), (EventKind.DELIVERED, Fate.NOT_HANDED),
           (EventKind.SEND_FAILED, Fate.REJECTED), (EventKind.EXPIRED, Fate.EXPIRED),
           (EventKind.COLLAPSED, Fate.COLLAPSED), (EventKind.DROPPED, Fate.DROPPED),
           (EventKind.FORWARDED, Fate.IN_FLIGHT), (EventKind.STORED, Fate.STORED))


def fate_of(kinds: Iterable[str], polled: bool = False, rule_dropped: bool = False) -> Fate:
    """The fate of a message whose events had ``kinds`` (any order).

    ``send_failed`` (the app server gave up) makes it rejected; a provider's
    ``rejected`` alone does not, since the app server may retry. A polled
    message (``polled``) waits in the app's inbox until the app polls.
    ``rule_dropped``: a ``rule`` event on the phone dropped it (the effect, not
    the kind, says so); only a later ``handed`` (a second copy) outranks that.
    """
    return fate_from(set(kinds).__contains__, polled, rule_dropped)


def fate_from(reached: Callable[[str], bool], polled: bool = False,
              rule_dropped: bool = False) -> Fate:
    """:func:`fate_of` for a message that answers ``reached(kind)`` itself (a delivery
    record reads its own hop times, without building a set of kinds first)."""
    if rule_dropped and not reached(EventKind.HANDED):
        return Fate.DROPPED_BY_RULE
    for kind, fate in _BY_HOP:
        if reached(kind):
            return fate
    if polled:
        return Fate.STORED
    if reached(EventKind.ACCEPTED):
        return Fate.ACCEPTED
    return Fate.SENT


def store_fate(forwarded: bool) -> Fate:
    """A message still in a provider's store: sent to the device already, or waiting."""
    return Fate.IN_FLIGHT if forwarded else Fate.STORED
