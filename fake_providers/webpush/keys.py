"""Keys on both ends of Web Push: the browser's subscription keys and a sender's VAPID keys.

RFC 8291 encrypts each message to the subscription's P-256 key (``p256dh``) and
16-octet ``auth`` secret, so only the user agent can read it; the push service
only carries the ciphertext. :class:`SubscriptionKeys` is what a browser makes
when it subscribes, and :meth:`SubscriptionKeys.decrypt` opens what arrives
(``aes128gcm``, or the legacy ``aesgcm`` with its ``Encryption`` and
``Crypto-Key`` headers) through the ``http_ece`` library. :class:`VapidKeys` is
an application server's key pair in the forms the senders want (pywebpush and
web-push take the raw private scalar in base64url; browsers take the public point
as ``applicationServerKey``). Both can come from a seeded ``random.Random`` so a
simulated run is the same every time.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fake_providers.webpush.vapid import b64url, b64url_decode, header_params

_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n


def _private_key(rng: random.Random | None) -> ec.EllipticCurvePrivateKey:
    if rng is None:
        return ec.generate_private_key(ec.SECP256R1())
    return ec.derive_private_key(1 + rng.randrange(_ORDER - 1), ec.SECP256R1())


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint)


@dataclass(frozen=True)
class SubscriptionKeys:
    """A subscription's private key and auth secret (the browser keeps these)."""

    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def generate(cls, rng: random.Random | None = None) -> SubscriptionKeys:
        auth = rng.randbytes(16) if rng is not None else secrets.token_bytes(16)
        return cls(_private_key(rng), auth)

    @property
    def p256dh(self) -> str:
        return b64url(_point(self.private_key))

    def subscription_info(self, endpoint: str) -> dict[str, Any]:
        """The ``PushSubscription.toJSON()`` a web app hands its application server."""
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)}}

    def decrypt(self, data: bytes, headers: dict[str, str]) -> bytes:
        """The plaintext of a notification's ``data`` (ValueError if it does not open)."""
        encoding = headers.get("encoding", "aes128gcm")
        try:
            if encoding == "aes128gcm":
                return http_ece.decrypt(data, private_key=self.private_key,
                                        auth_secret=self.auth, version="aes128gcm")
            if encoding == "aesgcm":
                salt = header_params(headers.get("encryption", ""))["salt"]
                dh = header_params(headers.get("crypto_key", ""))["dh"]
                return http_ece.decrypt(data, salt=b64url_decode(salt),
                                        dh=b64url_decode(dh), private_key=self.private_key,
                                        auth_secret=self.auth, version="aesgcm")
        except (http_ece.ECEException, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot decrypt: {exc}") from None
        raise ValueError(f"unknown encoding {encoding!r}")


@dataclass(frozen=True)
class VapidKeys:
    """An application server's VAPID key pair."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, rng: random.Random | None = None) -> VapidKeys:
        return cls(_private_key(rng))

    @property
    def public_key(self) -> str:
        """base64url of the public point: the ``applicationServerKey`` and VAPID ``k``."""
        return b64url(_point(self.private_key))

    @property
    def public_bytes(self) -> bytes:
        return _point(self.private_key)

    @property
    def private_raw(self) -> str:
        """base64url of the 32-octet private scalar (pywebpush's and web-push's form)."""
        return b64url(self.private_key.private_numbers().private_value.to_bytes(32, "big"))

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
