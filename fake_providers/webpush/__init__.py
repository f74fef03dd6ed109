"""The Web Push look-alike: a push service as RFC 8030/8291/8292 and Mozilla autopush define it.

Public surface, for the app server's sender, simulated browsers and the world builder:

* :mod:`.core`: :class:`~.core.WebPushCore`, the sans-IO service (HTTP requests in,
  answers and :class:`~.core.Send`/:class:`~.core.Close` actions out; the user
  agent's ``connect``/``subscribe``/``unsubscribe``/``ack``/``nack``/
  ``set_urgency``/``disconnect``), with :class:`~.core.WebPushConfig`;
* :mod:`.protocol`: the Mozilla push protocol over a websocket as sans-IO state
  machines, :class:`~.protocol.ServerConnection` (service side) and
  :class:`~.protocol.UserAgentClient` (browser side), usable over aiohttp or the
  in-memory network;
* :mod:`.keys`: :class:`~.keys.SubscriptionKeys` (a browser's p256dh/auth and
  decryption through http_ece) and :class:`~.keys.VapidKeys` (a sender's key pair);
* :mod:`.vapid`: the VAPID checks; :mod:`.errors`: autopush's error bodies and errnos;
* :mod:`.memory`: :class:`~.memory.MemoryWebPushGateway`, the same protocol over the
  in-memory network in simulated time (frames priced on the device's radio);
* :mod:`.server`: the aiohttp front end (:func:`~.server.start_webpush_server`,
  :func:`~.server.build_app`); :mod:`.lab`: :func:`~.lab.build_webpush_core`.
"""

from fake_providers.webpush.core import (
    BACK_OFF,
    Close,
    PushOutcome,
    Send,
    Subscription,
    WebPushConfig,
    WebPushCore,
)
from fake_providers.webpush.keys import SubscriptionKeys, VapidKeys
from fake_providers.webpush.protocol import Notification, ServerConnection, UserAgentClient

__all__ = ["BACK_OFF", "Close", "Notification", "PushOutcome", "Send", "ServerConnection",
           "Subscription", "SubscriptionKeys", "UserAgentClient", "VapidKeys", "WebPushConfig",
           "WebPushCore"]
