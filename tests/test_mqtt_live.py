"""The live device link end to end: PushDaemon <-MQTT-> embedded broker <-MQTT-> PushBackend."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest

from devices.daemon import CONNECTED, DaemonTimer, HeartbeatPolicy, PushDaemon
from devices.mqtt_link import MqttLinkFactory
from fake_providers.backend import PushBackend
from fake_providers.mqtt_gateway import MqttGateway
from fake_providers.registry import TokenRegistry, apns_token
from fake_providers.store import Envelope, KeepAllPolicy, StoreAndForward
from simulator.core import devicelink as dl
from simulator.core.trace import EventKind, Recorder, Trace
from simulator.live.broker import EmbeddedBroker

pytestmark = pytest.mark.live

PROVIDER = "apns"
APP = "com.example.chat"


async def until(pred: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    """Wait for a condition; the limit only keeps a broken run from hanging."""
    async with asyncio.timeout(limit_s):
        while not pred():
            await asyncio.sleep(0.01)
    assert pred(), what


class DaemonShell:
    """The smallest DaemonIO: real loop timers, links from an MqttLinkFactory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: MqttLinkFactory,
                 device_id: str, heartbeat: HeartbeatPolicy | None = None) -> None:
        self.loop = loop
        self.factory = factory
        self.handed: list[dl.Push] = []
        self.tokens: dict[str, str] = {}
        self.links_opened = 0
        self.daemon = PushDaemon(device_id, "ios", self, random.Random(7), heartbeat)
        self._timer = DaemonTimer(self.loop, self.daemon.on_timer)
        self.daemon.backoff_base_s = 0.2
        self.daemon.connect_timeout_s = 5.0

    # DaemonIO
    def open_link(self, daemon: PushDaemon):  # noqa: ANN201
        self.links_opened += 1
        return self.factory.open(daemon, daemon.device_id, daemon.address or None)

    def set_timer(self, when: float) -> None:
        self._timer.arm(when)

    def set_watchdog(self, delay: float) -> None:
        self.set_timer(self.loop.time() + delay)

    def hand_to_app(self, push: dl.Push) -> bool:
        self.handed.append(push)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        self.tokens[app_id] = token

    def notice(self, notice: dl.Notice) -> None:
        pass

    # test helpers
    def go_online(self, address: str, interface: str = "wifi") -> None:
        self.daemon.network_changed(self.loop.time(), interface, address)

    def stop(self) -> None:
        self._timer.cancel()
        self.daemon.network_changed(self.loop.time(), None, "")


class Lab:
    def __init__(self, broker: EmbeddedBroker, backend: PushBackend, gateway: MqttGateway,
                 factory: MqttLinkFactory, recorder: Recorder) -> None:
        self.broker = broker
        self.backend = backend
        self.gateway = gateway
        self.factory = factory
        self.recorder = recorder
        self.shells: list[DaemonShell] = []
        self._n = 0

    def device(self, device_id: str, heartbeat: HeartbeatPolicy | None = None) -> DaemonShell:
        shell = DaemonShell(asyncio.get_running_loop(), self.factory, device_id, heartbeat)
        self.shells.append(shell)
        return shell

    def accept(self, device_id: str, token: str, body: str) -> str:
        self._n += 1
        msg_id = f"m{self._n}"
        self.backend.accept(Envelope(msg_id, token, device_id, APP, {"aps": {"alert": body}},
                                     accepted_at=self.backend.clock()))
        return msg_id

    async def connect_and_register(self, shell: DaemonShell, address: str) -> str:
        shell.go_online(address)
        await until(lambda: shell.daemon.state == CONNECTED, "daemon connected")
        shell.daemon.register(asyncio.get_running_loop().time(), APP)
        await until(lambda: APP in shell.tokens, "token registered")
        return shell.tokens[APP]


@pytest.fixture(params=["aiomqtt", "lean"])
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    loop = asyncio.get_running_loop()
    broker = EmbeddedBroker()
    await broker.start()
    trace = Trace(loop.time)
    recorder = Recorder()
    trace.subscribe(recorder)
    backend = PushBackend(PROVIDER, TokenRegistry(random.Random(1), apns_token),
                          StoreAndForward(KeepAllPolicy()), loop.time, trace)
    gateway = MqttGateway(backend, broker.url, provider=PROVIDER, client=request.param,
                          username=broker.gateway_username, password=broker.gateway_password)
    await gateway.start()
    factory = MqttLinkFactory(broker.url, provider=PROVIDER, loop=loop,
                              password=broker.device_password)
    lab = Lab(broker, backend, gateway, factory, recorder)
    try:
        yield lab
    finally:
        for shell in lab.shells:
            shell.stop()
        await factory.aclose()
        await gateway.close()
        await broker.stop()


async def test_push_reaches_daemon_and_is_acked(lab: Lab) -> None:
    shell = lab.device("dev-a")
    token = await lab.connect_and_register(shell, "127.0.0.2")
    assert lab.backend.registry.lookup(token).device_id == "dev-a"
    assert "dev-a" in lab.backend.sessions
    assert lab.recorder.of(EventKind.CONNECTED)[0].data["address"] == "127.0.0.2"

    msg_id = lab.accept("dev-a", token, "hello over MQTT")
    await until(lambda: lab.backend.acked == 1, "push acked")
    assert [p.msg_id for p in shell.handed] == [msg_id]
    assert shell.handed[0].payload == {"aps": {"alert": "hello over MQTT"}}
    assert lab.backend.store.pending("dev-a") == []
    assert lab.gateway.stats.malformed == 0


async def test_link_binds_device_source_address(lab: Lab) -> None:
    shell = lab.device("dev-src")
    await lab.connect_and_register(shell, "127.0.0.9")
    broker_sessions = lab.broker._broker.sessions  # noqa: SLF001
    session, _ = broker_sessions["dev-src"]
    assert session.remote_address == "127.0.0.9"


async def test_heartbeats_flow_over_mqtt(lab: Lab) -> None:
    shell = lab.device("dev-hb", HeartbeatPolicy(cellular_s=0.05, wifi_s=0.05, ack_timeout_s=2))
    await lab.connect_and_register(shell, "127.0.0.3")
    await until(lambda: shell.daemon.heartbeats_acked >= 3, "three heartbeats answered")
    assert lab.backend.heartbeats >= 3
    assert lab.factory.keepalive_for(shell.daemon) == 5  # clamped to the minimum


async def test_address_change_keeps_delivering(lab: Lab) -> None:
    shell = lab.device("dev-move")
    token = await lab.connect_and_register(shell, "127.0.0.4")
    first = lab.accept("dev-move", token, "before the move")
    await until(lambda: lab.backend.acked == 1, "first push acked")

    shell.go_online("127.0.1.4")  # new address: the daemon closes its link and reconnects
    await until(lambda: shell.daemon.state == CONNECTED
                and len(lab.recorder.of(EventKind.CONNECTED)) == 2, "reconnected")
    connected = lab.recorder.of(EventKind.CONNECTED)
    assert [e.data["address"] for e in connected] == ["127.0.0.4", "127.0.1.4"]
    assert lab.recorder.of(EventKind.DISCONNECTED), "the old connection was seen to end"
    session, _ = lab.broker._broker.sessions["dev-move"]  # noqa: SLF001
    assert session.remote_address == "127.0.1.4"

    second = lab.accept("dev-move", token, "after the move")
    await until(lambda: lab.backend.acked == 2, "second push acked")
    assert [p.msg_id for p in shell.handed] == [first, second]
    assert shell.daemon.duplicates == 0


async def test_push_accepted_while_offline_is_delivered_on_reconnect(lab: Lab) -> None:
    shell = lab.device("dev-off")
    token = await lab.connect_and_register(shell, "127.0.0.5")
    shell.daemon.network_changed(asyncio.get_running_loop().time(), None, "")  # airplane mode
    await until(lambda: "dev-off" not in lab.backend.sessions, "provider saw the device go")

    held = lab.accept("dev-off", token, "while you were away")
    assert [e.msg_id for e in lab.backend.store.pending("dev-off")] == [held]
    assert lab.recorder.of(EventKind.STORED)[-1].data["online"] is False

    shell.go_online("127.0.0.6")
    await until(lambda: lab.backend.acked == 1, "held push acked")
    assert [p.msg_id for p in shell.handed] == [held]
    assert lab.backend.store.pending("dev-off") == []


class StubDaemon:
    """Just enough of a PushDaemon to watch one link's callbacks."""

    def __init__(self) -> None:
        self.heartbeat = HeartbeatPolicy()
        self.interface = "lte"
        self.frames: list[object] = []
        self.lost: list[object] = []

    def on_frame(self, link: object, msg: object, now: float) -> None:
        self.frames.append(msg)

    def on_link_lost(self, link: object, now: float) -> None:
        self.lost.append(link)


async def test_lost_broker_connection_is_reported_once(lab: Lab) -> None:
    daemon = StubDaemon()
    link = lab.factory.open(daemon, "dev-lost", "127.0.0.7")  # type: ignore[arg-type]
    assert link is not None and link.keepalive_s == 28 * 60 + 60
    assert link.send(dl.Hello("dev-lost", "android", "127.0.0.7"))
    await until(lambda: any(type(m) is dl.HelloAck for m in daemon.frames), "HelloAck")

    await lab.broker.stop()
    await until(lambda: daemon.lost, "link loss reported")
    await asyncio.sleep(0.05)
    assert daemon.lost == [link]
    assert link.send(dl.Ping(99)) is False
    await lab.broker.start()  # the fixture stops a running broker


async def test_closed_link_is_not_reported_lost(lab: Lab) -> None:
    daemon = StubDaemon()
    link = lab.factory.open(daemon, "dev-close", "127.0.0.12")  # type: ignore[arg-type]
    assert link is not None
    link.send(dl.Hello("dev-close", "android", "127.0.0.12"))
    await until(lambda: "dev-close" in lab.backend.sessions, "provider saw Hello")
    link.close()
    assert link.send(dl.Ping(1)) is False
    await link.wait_closed()
    await until(lambda: "dev-close" not in lab.backend.sessions, "gone reached the provider")
    assert daemon.lost == []


async def test_factory_refuses_unusable_device_ids(lab: Lab) -> None:
    assert lab.factory.open(StubDaemon(), "a/b", None) is None  # type: ignore[arg-type]
    assert lab.factory.open(StubDaemon(), "#", None) is None  # type: ignore[arg-type]


async def test_broker_restart_loses_nothing(lab: Lab) -> None:
    shell = lab.device("dev-restart")
    token = await lab.connect_and_register(shell, "127.0.0.8")
    await lab.broker.stop()
    await until(lambda: "dev-restart" not in lab.backend.sessions, "sessions dropped")

    held = lab.accept("dev-restart", token, "accepted during the outage")
    await lab.broker.start()  # same port
    await until(lambda: lab.gateway.connected.is_set(), "gateway back")
    await until(lambda: lab.backend.acked == 1, "held push delivered after the restart")
    assert [p.msg_id for p in shell.handed] == [held]
    assert lab.gateway.stats.connects == 2


async def test_device_cannot_read_another_devices_downlink(lab: Lab) -> None:
    victim = lab.device("dev-b")
    token_b = await lab.connect_and_register(victim, "127.0.0.10")
    b = lab.broker
    async with aiomqtt.Client("127.0.0.1", b.port, identifier="dev-a", username="dev-a",
                              password=b.device_password("dev-a")) as spy:
        granted = await spy.subscribe(dl.down_topic(PROVIDER, "dev-b"), qos=1)
        assert granted[0].value >= 0x80, "subscription to someone else's downlink refused"
        wild = await spy.subscribe(f"{dl.TOPIC_ROOT}/#", qos=1)
        assert wild[0].value >= 0x80
        own = await spy.subscribe(dl.down_topic(PROVIDER, "dev-a"), qos=1)
        assert own[0].value == 1

        secret = lab.accept("dev-b", token_b, "for dev-b only")
        await until(lambda: lab.backend.acked == 1, "dev-b got its push")
        assert [p.msg_id for p in victim.handed] == [secret]
        assert len(spy.messages) == 0, "the spy received nothing"

        # nor may it speak for dev-b: a forged uplink never reaches the gateway
        before = lab.gateway.stats.frames_in
        await spy.publish(dl.up_topic(PROVIDER, "dev-b"), dl.encode(dl.Ack(secret)), qos=1)
        await spy.publish(dl.down_topic(PROVIDER, "dev-b"), dl.encode(dl.Ping(1)), qos=1)
        marker = lab.accept("dev-b", token_b, "marker")
        await until(lambda: lab.backend.acked == 2, "marker acked")
        assert [p.msg_id for p in victim.handed] == [secret, marker]
        assert lab.gateway.stats.frames_in - before == 1  # only dev-b's own Ack of the marker


async def test_wrong_password_and_borrowed_client_id_are_refused(lab: Lab) -> None:
    b = lab.broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", b.port, identifier="dev-x", username="dev-x",
                                  password="guess"):
            pass
    with pytest.raises(aiomqtt.MqttError):  # dev-a may not take over dev-b's connection
        async with aiomqtt.Client("127.0.0.1", b.port, identifier="dev-b", username="dev-a",
                                  password=b.device_password("dev-a")):
            pass
    with pytest.raises(aiomqtt.MqttError):  # nor aim its Last Will at dev-b's downlink
        async with aiomqtt.Client("127.0.0.1", b.port, identifier="dev-a", username="dev-a",
                                  password=b.device_password("dev-a"),
                                  will=aiomqtt.Will(dl.down_topic(PROVIDER, "dev-b"), b"x")):
            pass


async def test_malformed_uplinks_are_counted_and_dropped(lab: Lab) -> None:
    shell = lab.device("dev-m")
    token = await lab.connect_and_register(shell, "127.0.0.11")
    b = lab.broker
    # a second client cannot share dev-m's client id, so speak as a sibling device
    async with aiomqtt.Client("127.0.0.1", b.port, identifier="dev-n", username="dev-n",
                              password=b.device_password("dev-n")) as other:
        await other.publish(dl.up_topic(PROVIDER, "dev-n"), b"\xff not json", qos=1)
        await other.publish(dl.up_topic(PROVIDER, "dev-n"), b'{"type":"Nope"}', qos=1)
        await other.publish(dl.status_topic(PROVIDER, "dev-n"), b"[]", qos=1)
        await other.publish(dl.up_topic(PROVIDER, "dev-n"), dl.encode(dl.Ping(1)), qos=1)
        await other.publish(dl.up_topic(PROVIDER, "dev-n"),
                            dl.encode(dl.Hello("dev-m", "ios", "x")), qos=1)
        await until(lambda: lab.gateway.stats.malformed >= 4, "malformed counted")
    assert lab.gateway.stats.orphan == 1  # the Ping before any Hello
    msg = lab.accept("dev-m", token, "still fine")
    await until(lambda: lab.backend.acked == 1, "gateway still delivers")
    assert shell.handed[-1].msg_id == msg


async def test_routing_survives_subscriptions_changing_meanwhile(lab: Lab) -> None:
    """Messages keep reaching every subscriber while other devices subscribe."""
    b = lab.broker
    frames = 100

    def device(name: str) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", b.port, identifier=name, username=name,
                              password=b.device_password(name))

    async with aiomqtt.Client("127.0.0.1", b.port, identifier="monitor",
                              username=b.gateway_username, password=b.gateway_password) as monitor:
        await monitor.subscribe(dl.UP_WILDCARD, qos=1)  # a second filter matching every uplink

        async def talk() -> None:
            async with device("dev-talk") as talker:
                for seq in range(frames):
                    await talker.publish(dl.up_topic(PROVIDER, "dev-talk"),
                                         dl.encode(dl.Ping(seq)), qos=1)

        talking = asyncio.ensure_future(talk())

        async def join(lane: int) -> None:
            n = 0
            while not talking.done():  # devices come and go: keys come and go in the table
                n += 1
                async with device(f"dev-join-{lane}-{n}") as joiner:
                    await joiner.subscribe(dl.down_topic(PROVIDER, f"dev-join-{lane}-{n}"), qos=1)

        await asyncio.gather(talking, *(join(lane) for lane in range(4)))
        seen: list[int] = []
        async with asyncio.timeout(15):
            async for message in monitor.messages:
                seen.append(dl.decode(message.payload).seq)
                if len(seen) == frames:
                    break
    assert sorted(seen) == list(range(frames))


async def test_link_bench_runs_small() -> None:
    from simulator.live import linkbench

    result = await linkbench.run(devices=3, pushes=20)
    assert (result.devices, result.pushes) == (3, 20)
    assert result.p50_ms <= result.p99_ms


async def test_gateway_with_wrong_password_fails_to_start(lab: Lab) -> None:
    gateway = MqttGateway(lab.backend, lab.broker.url, provider=PROVIDER, client_id="gw-bad",
                          username=lab.broker.gateway_username, password="wrong",
                          client=lab.gateway.client)
    with pytest.raises(ConnectionError):
        await gateway.start()
    assert not gateway.connected.is_set()
    assert gateway.stats.connects == 0


def test_gateway_client_must_be_known(lab: Lab) -> None:
    with pytest.raises(ValueError, match="aiomqtt, lean"):
        MqttGateway(lab.backend, lab.broker.url, client="paho")
