"""A throwaway certificate authority for the providers' live front ends.

Real clients insist on TLS (aioapns always, httpx for ``https://``), so the lab
makes its own CA and a server certificate on first use and keeps them in a
directory the user can name. Point a client at ``ca_path`` and it trusts the lab,
and nothing else changes. The server certificate names ``127.0.0.1``, ``::1``,
``localhost`` and Apple's, Google's and Mozilla's push hosts, so a client that cannot change
its host can be steered to the lab through ``/etc/hosts`` as well.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = (
    "localhost",
    "api.push.apple.com",
    "api.sandbox.push.apple.com",
    "api.development.push.apple.com",
    "fcm.googleapis.com",
    "oauth2.googleapis.com",
    "updates.push.services.mozilla.com",
    "push.services.mozilla.com",
)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


def default_tls_dir() -> Path:
    """``$PUSHLAB_HOME/tls`` or ``~/.pushlab/tls``."""
    home = os.environ.get("PUSHLAB_HOME")
    base = Path(home) if home else Path.home() / ".pushlab"
    return base / "tls"


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """Paths of the lab CA (what clients trust) and of the server's certificate and key."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self, alpn: tuple[str, ...] = ("h2",)) -> ssl.SSLContext:
        """A server context offering ``alpn``; a client that offers no ALPN still gets in."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the lab CA (for tests and tools)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PushLab"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _create(directory: Path) -> None:
    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("PushLab local CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("PushLab provider")).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / "ca.key", _pem_key(ca_key))
    _write_private(directory / "server.key", _pem_key(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # written last: its presence marks a complete set
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(directory: str | Path | None = None) -> TlsMaterial:
    """The lab's CA and server certificate in ``directory``, created on first use."""
    d = Path(directory) if directory is not None else default_tls_dir()
    d.mkdir(parents=True, exist_ok=True)
    material = TlsMaterial(d / "ca.pem", d / "server.pem", d / "server.key")
    if not all(p.exists() for p in (material.ca_path, material.cert_path, material.key_path)):
        _create(d)
    return material
