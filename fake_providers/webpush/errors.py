"""Web Push error answers in Mozilla autopush's shape.

autopush answers every failed request with a JSON body
``{"code", "errno", "error", "message", "more_info"}``: ``code`` is the HTTP status,
``errno`` says which rule failed (senders such as pywebpush and web-push show the
body to their users), ``error`` is the status's reason phrase. The errnos used here:

=====  ======  ============================================================
errno  status  meaning
=====  ======  ============================================================
102    404     unknown endpoint (bad token, wrong API version)
103    410     the user agent is gone (subscription expired)
104    413     payload larger than 4096 octets
106    410     the subscription was unsubscribed
109    401     VAPID missing or invalid (403: key is not the subscription's)
110    400     bad encryption headers (Content-Encoding, Encryption, Crypto-Key)
111    400     missing TTL
112    400     TTL that is not a whole number of seconds
113    400     Topic longer than 32 characters or not base64url
201    503     the service is down: back off (Retry-After)
202    503     the service is down: an immediate retry is fine
=====  ======  ============================================================

A few answers have no errno in autopush (``null``): a malformed message id on
``DELETE /m/{id}``, a wrong method, and a bad ``Urgency`` (autopush ignores the
header; PushLab checks it, as RFC 8030 section 5.3 defines its values).
"""

from __future__ import annotations

import json
from http import HTTPStatus

from simulator.core.http import HttpResponse

MORE_INFO = "http://autopush.readthedocs.io/en/latest/http.html#error-codes"
RETRY_AFTER_S = 120  # autopush's RETRY_AFTER_PERIOD


class WebPushProblem(Exception):
    """A request the push service refuses: status, errno and the message it gives."""

    def __init__(self, status: int, errno: int | None, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errno = errno
        self.message = message
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        return error_response(self.status, self.errno, self.message, self.headers)


def error_response(status: int, errno: int | None, message: str,
                   headers: dict[str, str] | None = None) -> HttpResponse:
    """autopush's error body; 410 is cacheable for a day and 503 carries Retry-After."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = json.dumps({"code": status, "errno": errno, "error": phrase, "message": message,
                       "more_info": MORE_INFO}).encode()
    out = {"content-type": "application/json"}
    if status == 410:
        out["cache-control"] = "max-age=86400"
    if status == 503:
        out["retry-after"] = str(RETRY_AFTER_S)
    out.update(headers or {})
    return HttpResponse(status, out, body)


def not_found(message: str = "Invalid URL endpoint") -> WebPushProblem:
    return WebPushProblem(404, 102, message)


def unauthorized(message: str) -> WebPushProblem:
    return WebPushProblem(401, 109, message, {"www-authenticate": "vapid"})


def forbidden(message: str) -> WebPushProblem:
    return WebPushProblem(403, 109, message)


def bad_encryption(message: str) -> WebPushProblem:
    return WebPushProblem(400, 110, message)
