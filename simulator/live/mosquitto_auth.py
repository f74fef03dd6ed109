"""The password and ACL files that give Mosquitto the embedded broker's logins and topic rules.

Mosquitto keeps a list where the embedded broker derives: every device gets a
line in the password file, with the same password
(:func:`simulator.live.broker.device_password`), hashed the way Mosquitto 2
hashes (PBKDF2-SHA512, the ``$7$`` format ``mosquitto_passwd`` writes). The ACL
is the one in docs/live-mqtt.md: the gateway reads every ``up`` and ``status``
topic and writes every ``down`` topic; a device (``%u``, its username) reads its
own ``down`` and writes its own ``up`` and ``status``.

What Mosquitto does with these files on a client id that is already connected
(checked against the real binary by ``tests/test_mqtt_acl.py``): a CONNECT that
fails the login gets CONNACK 5 and leaves the connected client alone; one that
logs in takes the client id over whoever holds it, even under another username.
With ``bind_client_ids`` Mosquitto replaces every client id by the username
(``use_username_as_clientid``), so one login can only ever displace itself; each
gateway then needs a username of its own.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from simulator.core import devicelink as dl
from simulator.live.broker import device_password, write_private

ACL = """\
user {gateway}
topic read pushlab/+/+/up
topic read pushlab/+/+/status
topic write pushlab/+/+/down

pattern read pushlab/+/%u/down
pattern write pushlab/+/%u/up
pattern write pushlab/+/%u/status
"""

#: the iteration count ``mosquitto_passwd`` uses
ITERATIONS = 101


def password_line(username: str, password: str, salt: bytes | None = None) -> str:
    """One password-file line in Mosquitto 2's ``$7$`` (PBKDF2-SHA512) format."""
    if ":" in username or "\n" in username + password:
        raise ValueError(f"{username!r}: a username with ':' or a newline cannot be stored")
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return (f"{username}:$7${ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def write_auth_files(directory: Path, *, gateway_username: str, gateway_password: str,
                     device_secret: str, device_ids: Iterable[str]) -> tuple[Path, Path]:
    """Write ``passwords`` (mode 0600) and ``acl`` into ``directory``; return both paths."""
    lines = [password_line(gateway_username, gateway_password)]
    for device_id in device_ids:
        if not dl.valid_device_id(device_id) or device_id == gateway_username:
            raise ValueError(f"{device_id!r} cannot be a device's username")
        lines.append(password_line(device_id, device_password(device_secret, device_id)))
    directory.mkdir(parents=True, exist_ok=True)
    passwords, acl = directory / "passwords", directory / "acl"
    write_private(passwords, "\n".join(lines) + "\n")
    acl.write_text(ACL.format(gateway=gateway_username))
    return passwords, acl


def config_lines(passwords: Path, acl: Path, *, bind_client_ids: bool = False) -> list[str]:
    """The ``mosquitto.conf`` lines that turn these files on (and anonymous logins off)."""
    lines = ["allow_anonymous false", f"password_file {passwords}", f"acl_file {acl}"]
    if bind_client_ids:
        lines.append("use_username_as_clientid true")
    return lines
