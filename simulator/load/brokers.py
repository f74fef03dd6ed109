"""External broker binaries a load run or a live lab starts itself: Mosquitto and a
NATS cluster from Debian's packages on loopback ports chosen by the OS, each a
:class:`BrokerProcess` the run starts, restarts and stops."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (the broker binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.access(p, os.X_OK)), None)


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return True
        time.sleep(0.05)
    return False


class BrokerProcess:
    """One broker binary on loopback that this run starts, restarts and stops."""

    name = "broker"

    def __init__(self, workdir: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"pushlab-{self.name}-") \
            if workdir is None else None
        self.dir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> BrokerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        from simulator.load.worker import die_with_parent, raise_fd_limit

        def in_child() -> None:  # pragma: no cover - runs in the child before exec
            die_with_parent()  # the broker gets SIGTERM if the process that started it dies
            raise_fd_limit()

        out = open(self.dir / log_name, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=in_child,
                                # a terminal's Ctrl-C is for the run, which stops its
                                # broker itself once nothing uses it any more
                                start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc


class Mosquitto(BrokerProcess):
    """Mosquitto (Debian's package) on 127.0.0.1, anonymous.

    Sessions persist across a restart (saved when it stops, not while it runs), as on a
    production broker: the provider gateway's subscriptions survive ``broker-restart``.
    """

    name = "mosquitto"

    def __init__(self, port: int = 0, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self.binary = find_binary("mosquitto")
        if self.binary is None:
            raise FileNotFoundError("mosquitto is not installed (scripts/install-brokers.sh)")
        self.port = port or free_port()

    @property
    def urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{self.port}"]

    def config(self) -> str:
        return "\n".join([
            f"listener {self.port} 127.0.0.1",
            "user root",  # as root mosquitto would switch user, which clears PDEATHSIG
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 0",  # save on shutdown only: no disk writes during a run
            "max_queued_messages 100000",
            "max_connections -1",  # no cap but the descriptor limit (raised for it)
            # what the broker writes to a client before its PUBACKs: after a restart
            # the gateway's kept session holds every phone's Hello, written ahead of the
            # SUBACK its connect waits for; unbounded, a busy gateway passes its connect
            # deadline handling them and drops the sessions it made
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",
            "log_type error",
            "log_type warning",
            "",
        ])

    def start(self) -> None:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(self.config())
        self._spawn([self.binary, "-c", str(conf)], "mosquitto.log")  # type: ignore[list-item]
        if not wait_port("127.0.0.1", self.port, 10.0):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on {self.port}: "
                               f"{(self.dir / 'mosquitto.log').read_text()[-500:]}")


class MosquittoShards(BrokerProcess):
    """``shards`` independent Mosquitto processes, each on its own port.

    One process holds one descriptor per connection, and a process may not raise
    its descriptor limit past the hard one; a population larger than that is split
    over several brokers, the way a provider spreads devices over its courier
    nodes. They are not bridged: each device uses one broker, and the provider's
    gateway connects to all of them. They restart together.
    """

    name = "mosquitto"

    def __init__(self, shards: int, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self.shards = [Mosquitto(workdir=str(self.dir / f"shard-{k}")) for k in range(shards)]
        for shard in self.shards:
            shard.dir.mkdir(parents=True, exist_ok=True)

    @property
    def urls(self) -> list[str]:
        return [shard.url for shard in self.shards]

    @property
    def pids(self) -> list[int]:
        return [pid for shard in self.shards for pid in shard.pids]

    def start(self) -> None:
        for shard in self.shards:
            shard.start()

    def stop(self) -> None:
        for shard in self.shards:  # all go down at once, then each is waited for
            for p in shard.procs:
                if p.poll() is None:
                    p.terminate()
        for shard in self.shards:
            shard.stop()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class NatsCluster(BrokerProcess):
    """``nodes`` nats-server processes in one cluster, each with MQTT and JetStream."""

    name = "nats"

    def __init__(self, nodes: int = 3, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self.binary = find_binary("nats-server")
        if self.binary is None:
            raise FileNotFoundError("nats-server is not installed (scripts/install-brokers.sh)")
        self.nodes = nodes
        self.client_ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.mqtt_ports = [free_port() for _ in range(nodes)]

    @property
    def urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{p}" for p in self.mqtt_ports]

    def config(self, i: int) -> str:
        routes = ", ".join(f'"nats://127.0.0.1:{p}"' for j, p in enumerate(self.cluster_ports)
                           if j != i)
        store = self.dir / f"js-{i}"
        return "\n".join([
            f'server_name: "pushlab-n{i}"',
            f"listen: 127.0.0.1:{self.client_ports[i]}",
            f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, '
            f"max_file_store: 1GB }}",
            f'cluster {{ name: "pushlab", listen: 127.0.0.1:{self.cluster_ports[i]}, '
            f"routes: [{routes}] }}",
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]}, ack_wait: \"5s\" }}",
            "",
        ])

    def start(self) -> None:
        for i in range(self.nodes):
            conf = self.dir / f"nats-{i}.conf"
            conf.write_text(self.config(i))
            self._spawn([self.binary, "-c", str(conf)], f"nats-{i}.log")  # type: ignore[list-item]
        for i, port in enumerate(self.mqtt_ports):
            if not wait_port("127.0.0.1", port, 30.0):
                logs = (self.dir / f"nats-{i}.log").read_text()[-800:]
                self.stop()
                raise RuntimeError(f"nats node {i} did not open MQTT on {port}: {logs}")

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """JetStream needs a meta leader before MQTT sessions work: try a real session."""
        import paho.mqtt.client as paho

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = all(_mqtt_roundtrip(paho, port) for port in self.mqtt_ports)
            if ok:
                return True
            time.sleep(0.5)
        return False


def _mqtt_roundtrip(paho: Any, port: int) -> bool:
    """Connect, subscribe QoS 1, publish to ourselves, receive: a broker that really works."""
    got: list[bytes] = []
    topic = f"pushlab/probe/{port}/{time.monotonic_ns()}"
    client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                         client_id=f"probe-{port}-{time.monotonic_ns()}")
    client.on_message = lambda c, u, m: got.append(m.payload)
    try:
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        result, _ = client.subscribe(topic, qos=1)
        if result != 0:
            return False
        time.sleep(0.2)
        client.publish(topic, b"x", qos=1)
        deadline = time.monotonic() + 2.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(got)
    except OSError:
        return False
    finally:
        with contextlib.suppress(Exception):
            client.loop_stop()
            client.disconnect()


def describe(broker: BrokerProcess) -> str:
    return json.dumps({"broker": broker.name, "urls": broker.urls, "pids": broker.pids})
