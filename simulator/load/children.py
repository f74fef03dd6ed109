"""The run's child processes as the orchestrator sees them: a pipe, a queue, a stop.

Each service of a live load run (broker, providers, app server, workers, the bare
publisher) is a spawned process that talks to the orchestrator over a
``multiprocessing`` pipe; shard workers on other machines attach over TCP
(:func:`accept_remote_workers`) and are driven the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.load.orchestrator import LoadConfig
    from simulator.load.worker import WorkerSpec

SPAWN = multiprocessing.get_context("spawn")


class Child:
    """A child process and its pipe; messages are dispatched as they arrive."""

    def __init__(self, name: str, target: Callable[..., None], spec: Any) -> None:
        parent, child = SPAWN.Pipe()
        self.name = name
        self.conn = parent
        self.process = SPAWN.Process(target=target, args=(spec, child), name=name, daemon=True)
        self.process.start()
        child.close()
        self.latest: dict[str, Any] = {}
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.pid = self.process.pid
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                kind, body = self.conn.recv()
                if kind == "tally":
                    self.latest["tally"] = body
                else:
                    self.queue.put_nowait((kind, body))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())

    def send(self, cmd: str, arg: Any = None) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send((cmd, arg))

    async def expect(self, kind: str, timeout: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            # a remote worker has no process here: only the deadline ends its wait
            exited = self.process is not None and not self.process.is_alive()
            if left <= 0 or exited and self.queue.empty():
                code = f" (exit code {self.process.exitcode})" if self.process else ""
                raise TimeoutError(f"{self.name}: no {kind!r}{code}")
            try:
                got, body = await asyncio.wait_for(self.queue.get(), min(left, 0.5))
            except TimeoutError:
                continue
            if got == kind:
                return body

    async def ask(self, cmd: str, arg: Any = None, timeout: float = 30.0) -> Any:
        self.send(cmd, arg)
        return await self.expect(cmd, timeout)

    async def stop(self) -> None:
        self.send("stop")
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        for _ in range(100):
            if not self.process.is_alive():
                break
            await asyncio.sleep(0.05)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class RemoteChild(Child):
    """A worker on another machine (or just another process tree) attached over TCP."""

    def __init__(self, name: str, conn: Any) -> None:  # noqa: D107 - no process to start
        self.name = name
        self.conn = conn
        self.process = None  # type: ignore[assignment]
        self.latest = {}
        self.queue = asyncio.Queue()
        self.pid = None  # type: ignore[assignment]
        self.alive = True
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            super()._readable()
        except Exception:  # noqa: BLE001
            self.alive = False
        if self.conn.closed:
            self.alive = False

    async def stop(self) -> None:
        self.send("stop")
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        await asyncio.sleep(0.2)
        with contextlib.suppress(Exception):
            self.conn.close()


async def accept_remote_workers(cfg: LoadConfig, first: int, shards: int,
                                make_spec: Callable[[int], WorkerSpec]) -> list[RemoteChild]:
    """Listen for ``cfg.remote_workers`` shard workers; hand each its spec."""
    import dataclasses
    from multiprocessing.connection import Listener

    loop = asyncio.get_running_loop()
    host, _, port = cfg.listen.rpartition(":")
    key = (cfg.join_key or "").encode()
    listener = Listener((host or "127.0.0.1", int(port or 0)), authkey=key)
    got: dict[int, RemoteChild] = {}
    try:
        lhost, lport = listener.address
        if cfg.on_listen is not None:
            cfg.on_listen(lhost, lport, cfg.join_key or "")
        deadline = loop.time() + cfg.join_timeout_s
        wanted = set(range(first, shards))
        while wanted - set(got):
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"remote workers missing: shards {sorted(wanted - set(got))}"
                                   f" of {shards} never joined {lhost}:{lport}")
            try:
                conn = await asyncio.wait_for(loop.run_in_executor(None, listener.accept),
                                              left)
            except Exception as exc:  # noqa: BLE001 - bad key, closed socket
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(f"remote workers missing: shards "
                                       f"{sorted(wanted - set(got))}") from None
                continue
            kind, body = conn.recv()
            shard = body.get("shard") if kind == "join" else None
            if body.get("of") != shards or shard not in wanted or shard in got:
                conn.send(("refused", f"this run has shards {sorted(wanted - set(got))} "
                                      f"of {shards} free"))
                conn.close()
                continue
            conn.send(("spec", dataclasses.asdict(make_spec(shard))))
            got[shard] = RemoteChild(f"worker-{shard}", conn)
        return [got[i] for i in sorted(got)]
    finally:
        listener.close()
