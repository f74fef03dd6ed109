"""Provider signing keys for token-based auth, as Apple hands them out.

Apple gives a team a 10-character Team ID and, per key, a 10-character Key ID and
an ``AuthKey_<KEYID>.p8`` file (an ES256 / P-256 private key in PKCS#8 PEM). A
provider signs a JWT ``{"alg":"ES256","kid":KEYID}.{"iss":TEAMID,"iat":now}`` with
it. The lab writes the same file plus a small ``AuthKey_<KEYID>.json`` beside it
(team, environment, topics) so the APNs look-alike knows which keys to trust.
"""

from __future__ import annotations

import json
import random
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_ID_ALPHABET = string.ascii_uppercase + string.digits
KEY_ENVIRONMENTS = ("both", "production", "sandbox")


def new_id(rng: random.Random | None = None) -> str:
    """A 10-character identifier in Apple's alphabet (Team ID, Key ID)."""
    if rng is None:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    return "".join(rng.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(slots=True)
class ProviderKey:
    """What a provider holds: the private key and the two identifiers."""

    team_id: str
    key_id: str
    private_pem: bytes
    environment: str = "both"
    topics: tuple[str, ...] = ()
    path: Path | None = None

    def sign(self, iat: int) -> str:
        """A provider authentication token (JWT) issued at ``iat`` (epoch seconds)."""
        return sign_provider_token(self.private_pem, self.key_id, self.team_id, iat)

    def bearer(self, iat: int) -> str:
        return f"bearer {self.sign(iat)}"

    def trusted(self) -> TrustedKey:
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        return TrustedKey(self.team_id, self.key_id, private.public_key(),  # type: ignore[arg-type]
                          self.environment, frozenset(self.topics))


@dataclass(slots=True)
class TrustedKey:
    """What the lab holds: the public half, its team, and where it may be used."""

    team_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey
    environment: str = "both"
    topics: frozenset[str] = field(default_factory=frozenset)  # empty: any topic

    def allows_environment(self, environment: str) -> bool:
        return self.environment in ("both", environment)


def generate_key(team_id: str | None = None, key_id: str | None = None, *,
                 environment: str = "both", topics: tuple[str, ...] = (),
                 rng: random.Random | None = None) -> ProviderKey:
    """A new P-256 key with fresh (or given) identifiers, kept in memory."""
    if environment not in KEY_ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(KEY_ENVIRONMENTS)}")
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ProviderKey(team_id or new_id(rng), key_id or new_id(rng), pem, environment,
                       tuple(topics))


def write_key(key: ProviderKey, directory: str | Path) -> Path:
    """Store ``AuthKey_<KEYID>.p8`` (private, mode 0600) and its ``.json`` description."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p8 = d / f"AuthKey_{key.key_id}.p8"
    p8.touch(mode=0o600)
    p8.write_bytes(key.private_pem)
    meta = {"team_id": key.team_id, "key_id": key.key_id, "environment": key.environment,
            "topics": list(key.topics)}
    (d / f"AuthKey_{key.key_id}.json").write_text(json.dumps(meta, indent=2) + "\n")
    key.path = p8
    return p8


def read_key(p8_path: str | Path) -> ProviderKey:
    """A key written by :func:`write_key` (its ``.json`` says the team)."""
    p8 = Path(p8_path)
    meta = json.loads(p8.with_suffix(".json").read_text())
    return ProviderKey(meta["team_id"], meta["key_id"], p8.read_bytes(),
                       meta.get("environment", "both"), tuple(meta.get("topics", ())), p8)


def load_trusted_keys(directory: str | Path) -> dict[str, TrustedKey]:
    """Every key in ``directory`` that has both its ``.p8`` and ``.json``, by Key ID."""
    out: dict[str, TrustedKey] = {}
    d = Path(directory)
    if not d.is_dir():
        return out
    for p8 in sorted(d.glob("AuthKey_*.p8")):
        if p8.with_suffix(".json").exists():
            key = read_key(p8)
            out[key.key_id] = key.trusted()
    return out


def sign_provider_token(private_pem: bytes | str, key_id: str, team_id: str, iat: int) -> str:
    """The JWT APNs expects: ES256, header ``kid``, claims ``iss`` and ``iat`` only."""
    return jwt.encode({"iss": team_id, "iat": int(iat)}, private_pem, algorithm="ES256",
                      headers={"kid": key_id})
