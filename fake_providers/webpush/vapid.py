"""VAPID (RFC 8292): who is sending, checked the way a push service checks it.

Two header forms reach a push service:

* ``Authorization: vapid t=<JWT>, k=<public key>`` (RFC 8292, what web-push and
  pywebpush send with ``aes128gcm``);
* the draft-era ``Authorization: WebPush <JWT>`` with the key in
  ``Crypto-Key: p256ecdsa=<public key>`` (sent with the legacy ``aesgcm``).

The key is a base64url, uncompressed P-256 point (65 octets). The JWT must be
ES256 and signed by that key; its ``aud`` is the endpoint's origin, its ``exp``
is present, in the future and at most 24 hours ahead, its ``sub`` a ``mailto:``
or ``https:`` URL. Any failure is 401 with autopush's errno 109 and the reason.
Time comes from the caller, so the same check runs in virtual time.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from fake_providers.webpush.errors import WebPushProblem, unauthorized

MAX_EXP_AHEAD_S = 86400


@dataclass(frozen=True, slots=True)
class Vapid:
    """A verified VAPID identity."""

    public_key: bytes  # the raw 65-octet point, as in a subscription's applicationServerKey
    claims: dict[str, Any]
    scheme: str  # "vapid" (RFC 8292) or "webpush" (draft, key in Crypto-Key)


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError when it is not base64url."""
    text = text.strip().rstrip("=")
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_public_key(text: str) -> tuple[bytes, ec.EllipticCurvePublicKey]:
    """The raw point and the key object of a base64url P-256 public key (ValueError if not)."""
    raw = b64url_decode(text)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return raw, ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def header_params(value: str, separators: str = ",;") -> dict[str, str]:
    """``a=1, b=2`` or ``a=1;b=2`` as a mapping; ValueError on a repeated or bare item."""
    out: dict[str, str] = {}
    for sep in separators[1:]:
        value = value.replace(sep, separators[0])
    for item in value.split(separators[0]):
        item = item.strip()
        if not item:
            continue
        name, eq, val = item.partition("=")
        name = name.strip().lower()
        if not eq or not name or name in out:
            raise ValueError(f"bad parameter {item[:40]!r}")
        out[name] = val.strip().strip('"')
    return out


def read_vapid(authorization: str | None, crypto_key: str | None) -> tuple[str, str, str] | None:
    """(scheme, JWT, key) from the request's headers, None when there is no Authorization."""
    if authorization is None:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "vapid":
        try:
            params = header_params(rest, ",")
        except ValueError as exc:
            raise unauthorized(f"Invalid VAPID header: {exc}") from None
        if "t" not in params:
            raise unauthorized("Missing VAPID token")
        if "k" not in params:
            raise unauthorized("Missing VAPID public key")
        return "vapid", params["t"], params["k"]
    if scheme == "webpush":
        if crypto_key is None:
            raise WebPushProblem(400, 110, "Missing Crypto-Key header")
        try:
            key = header_params(crypto_key).get("p256ecdsa")
        except ValueError:
            raise WebPushProblem(400, 110, "Invalid Crypto-Key header") from None
        if not key:
            raise unauthorized("Missing VAPID public key")
        return "webpush", rest.strip(), key
    raise unauthorized("Unknown auth scheme")


CACHE_MAX = 4096


def verify_vapid(scheme: str, token: str, key_text: str, origins: set[str], now: float,
                 cache: dict[tuple[str, str], Vapid] | None = None) -> Vapid:
    """Check the JWT against the key, the endpoint's origins and the wall time ``now``.

    RFC 8292 section 2 asks senders to reuse a token until near its expiry; ``cache``
    remembers tokens whose signature was already verified with that key, so only the
    claims (``aud``, ``exp``, ``sub``) are checked again, on every request.
    """
    if cache is not None:
        known = cache.get((token, key_text))
        if known is not None:
            check_claims(known.claims, origins, now)
            return Vapid(known.public_key, known.claims, scheme)
    vapid = _verify(scheme, token, key_text)
    check_claims(vapid.claims, origins, now)
    if cache is not None:
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[(token, key_text)] = vapid
    return vapid


def _verify(scheme: str, token: str, key_text: str) -> Vapid:
    """The signature and shape of the JWT; the claims are checked by the caller."""
    try:
        raw, key = parse_public_key(key_text)
    except ValueError as exc:
        raise unauthorized(f"Invalid VAPID public key: {exc}") from None
    try:
        claims = jwt.decode(token, key, algorithms=["ES256"],
                            options={"verify_exp": False, "verify_aud": False,
                                     "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError as exc:
        raise unauthorized(f"Invalid VAPID token: {exc}") from None
    except (ValueError, TypeError) as exc:  # very odd tokens can escape pyjwt's own errors
        raise unauthorized(f"Invalid VAPID token: {exc}") from None
    if not isinstance(claims, dict):
        raise unauthorized("Invalid VAPID token: claims are not an object")
    return Vapid(raw, claims, scheme)


def check_claims(claims: dict[str, Any], origins: set[str], now: float) -> None:
    """RFC 8292 section 2: aud, exp and sub."""
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud.rstrip("/").lower() not in origins:
        raise unauthorized("Invalid VAPID audience")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        raise unauthorized("Invalid VAPID expiry")
    if exp <= now:
        raise unauthorized("Invalid VAPID expiry")
    if exp > now + MAX_EXP_AHEAD_S:
        raise unauthorized("The VAPID token expiration is too long")
    sub = claims.get("sub")
    if sub is None:
        raise unauthorized("Missing sub")
    if not isinstance(sub, str) or not sub:
        raise unauthorized("Empty sub string")
    if not ((sub.startswith("mailto:") and len(sub) > 7) or
            (sub.startswith("https://") and len(sub) > 8)):
        raise unauthorized("Improperly formatted sub string")
