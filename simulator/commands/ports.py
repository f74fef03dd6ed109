"""Listening ports of the ``serve`` commands: a taken port is one line, before anything starts.

Servers bind several ports; a port another program holds would otherwise surface as an
``OSError`` traceback from deep inside asyncio, after part of the lab has started.
"""

from __future__ import annotations

import errno
import socket

import typer

# typer.Option(..., min=PORT_MIN, max=PORT_MAX) on every port option
PORT_MIN = 0
PORT_MAX = 65535


def _addresses(host: str, option_of_host: str) -> list[tuple]:
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise typer.BadParameter(f"{host!r} is not an address of this machine ({reason})",
                                 param_hint=option_of_host) from None
    return [(family, addr[0]) for family, _, _, _, addr in infos]


def _why_taken(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "is in use by another program"
    if exc.errno == errno.EACCES:
        return "needs privileges (ports below 1024 are for root)"
    return f"cannot be bound ({exc.strerror or exc})"


def ensure_free(host: str, ports: dict[str, int], option_of_host: str = "--host") -> None:
    """Bind each of ``ports`` (option -> port; 0 is any) for a moment, as the server will.

    Raises a one-line ``typer.BadParameter`` naming the option of the first port that is
    taken, and how to pick another.
    """
    addresses = _addresses(host, option_of_host)
    for option, port in ports.items():  # port 0 still checks that the host is ours
        for family, address in addresses:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                # the servers set SO_REUSEADDR too: a port in TIME_WAIT is free for them
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((address, port))
                except OSError as exc:
                    where = f"[{address}]:{port}" if family == socket.AF_INET6 else \
                        f"{address}:{port}"
                    if exc.errno == errno.EADDRNOTAVAIL:
                        raise typer.BadParameter(f"{host!r} is not an address of this "
                                                 "machine", param_hint=option_of_host) from None
                    raise typer.BadParameter(
                        f"port {where} {_why_taken(exc)}; choose another with "
                        f"{option} PORT, or {option} 0 for any free port",
                        param_hint=option) from None
