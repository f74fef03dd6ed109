"""One name per message, whatever the provider calls it.

The app server names a message before the provider does. APNs echoes the
app server's ``apns-id``, so one id follows the message to the phone. FCM
answers with its own message name (``0:<micros>%<hash>``) and the provider's
later hops carry that name; the app server notes it beside its own id
(a ``provider_id`` event). A topic send fans out as ``<provider id>/<n>``,
one per subscriber. :class:`MessageIds` maps all of these back to the app
server's id, for a whole trace (the reports) or event by event (the
dashboard, where the note can arrive after the hops it names).
"""

from __future__ import annotations

from simulator.core.events import ProviderId, TraceEvent


class MessageIds:
    """Provider ids -> the app server's id; bounded when ``limit`` is given.

    ``reverse=False`` keeps no app server id -> provider ids map (:meth:`provider_ids`
    then answers nothing): a whole run's outcome needs only the forward names.
    """

    __slots__ = ("_alias", "_names", "limit", "reverse")

    def __init__(self, limit: int | None = None, reverse: bool = True) -> None:
        self._alias: dict[str, str] = {}
        self._names: dict[str, list[str]] = {}
        self.limit = limit
        self.reverse = reverse

    def learn(self, event: TraceEvent) -> tuple[str, str] | None:
        """Record a ``provider_id`` event; its (provider id, app server id), else None."""
        if type(event) is not ProviderId:
            return None
        provider_id = event.provider_msg
        app_id = event.msg
        if provider_id == app_id:
            return None
        self._alias[provider_id] = app_id
        if self.reverse:
            self._names.setdefault(app_id, []).append(provider_id)
        if self.limit is not None and len(self._alias) > self.limit:
            self.forget(next(iter(self._alias)))
        return provider_id, app_id

    def forget(self, provider_id: str) -> None:
        app_id = self._alias.pop(provider_id, None)
        names = self._names.get(app_id) if app_id is not None else None
        if names is not None:
            names.remove(provider_id)
            if not names:
                del self._names[app_id]  # type: ignore[arg-type]

    def canonical(self, msg: str) -> str:
        """The app server's id for ``msg``; a topic delivery keeps its ``/<n>``."""
        alias = self._alias
        if msg in alias:
            return alias[msg]
        head, sep, tail = msg.partition("/")
        if sep and head in alias:
            return f"{alias[head]}/{tail}"
        return msg

    def provider_ids(self, app_id: str) -> tuple[str, ...]:
        """The provider's names for the app server's ``app_id`` (none for APNs)."""
        return tuple(self._names.get(app_id, ()))


def short_id(msg: str, width: int = 8) -> str:
    """A message id cut to ``width`` characters that still tells messages apart.

    FCM names share their leading ``0:<micros>`` within a second; the hash after
    the ``%`` is what differs. A topic delivery keeps its ``/<n>``.
    """
    head, sep, tail = msg.partition("/")
    if "%" in head:
        head = head.rpartition("%")[2]
    if not sep:
        return head[:width]
    return f"{head[:max(width - len(tail) - 1, 3)]}/{tail}"
