"""The embedded broker in a process of its own, for the live lab of ``pushlab up``.

The embedded broker (amqtt, pure Python, PushLab's ACL) is the busiest part of a lab
with hundreds of phones: in the lab's own process it shares one core with the phones,
the providers and the gateways. Here the same :class:`~simulator.live.broker.EmbeddedBroker`
runs in a child Python process on the other core; the lab sees a URL, a gateway login
and device passwords as before, and nothing needs installing.

The child reads its settings (with the secrets) as one JSON line on stdin, never its
command line, answers ``ready PORT`` on stdout once it listens, and stops when stdin
closes (its parent is gone, however it ended) or on SIGTERM. It runs in a session of
its own, so the Ctrl-C a terminal sends to the lab does not stop the broker before the
lab has stopped what uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
from typing import Any

from simulator.live.broker import device_password

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class EmbeddedBrokerProcess:
    """An :class:`~simulator.live.broker.EmbeddedBroker` in a child process (see above)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 gateway_username: str = "gateway") -> None:
        self.host = host
        self.port = port
        self.gateway_username = gateway_username
        self.gateway_password = secrets.token_urlsafe(16)
        self.device_secret = secrets.token_urlsafe(16)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("broker not started yet: its port is not known")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def device_password(self, device_id: str) -> str:
        return device_password(self.device_secret, device_id)

    async def start(self) -> None:
        """Start the child and wait until it listens (OSError when it cannot)."""
        if self.running:
            return
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator.live.broker_child",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        settings = {"host": self.host, "port": self.port,
                    "gateway_username": self.gateway_username,
                    "gateway_password": self.gateway_password,
                    "device_secret": self.device_secret}
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps(settings) + "\n").encode())
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line.startswith(b"ready "):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
            await proc.wait()
            raise OSError(f"embedded broker did not start: {err.strip()[-300:] or 'no answer'}")
        self.port = int(line.split()[1])
        self._proc = proc

    async def stop(self) -> None:
        """Close stdin (the child stops its broker and exits); kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        """Stop and start again on the same port (the timeline's ``broker_restart``)."""
        await self.stop()
        await self.start()


async def _serve(settings: dict[str, Any]) -> None:
    from simulator.live.broker import EmbeddedBroker

    broker = EmbeddedBroker(settings["host"], int(settings["port"]),
                            gateway_username=settings["gateway_username"],
                            gateway_password=settings["gateway_password"],
                            device_secret=settings["device_secret"])
    await broker.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write(f"ready {broker.port}\n")
    sys.stdout.flush()
    eof = loop.create_task(reader.read())  # returns once the parent closes stdin
    stop = loop.create_task(done.wait())
    await asyncio.wait({eof, stop}, return_when=asyncio.FIRST_COMPLETED)
    eof.cancel()
    stop.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(broker.stop(), STOP_TIMEOUT_S - 1.0)


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the lab decides when the broker stops
    settings = json.loads(sys.stdin.buffer.readline())
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
