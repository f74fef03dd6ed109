"""The push daemon as a sans-IO state machine: driven by hand, no loop, no sockets."""

import random

import pytest

from devices.daemon import (
    BACKOFF,
    CONNECTED,
    CONNECTING,
    IP_CALLBACK,
    LISTENING,
    OFFLINE,
    PERSISTENT,
    DaemonProtocolError,
    PushDaemon,
    RecentIds,
)
from simulator.core import devicelink as dl


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[object] = []
        self.closed = False

    def send(self, msg: object) -> bool:
        self.sent.append(msg)
        return not self.closed

    def close(self) -> None:
        self.closed = True


class FakeIO:
    def __init__(self) -> None:
        self.links: list[FakeLink] = []
        self.timers: list[float] = []
        self.watchdogs: list[float] = []
        self.handed: list[dl.Push] = []
        self.tokens: list[tuple[str, str]] = []

    def open_link(self, daemon):  # noqa: ANN001, ANN201
        self.links.append(FakeLink())
        return self.links[-1]

    def set_timer(self, when: float) -> None:
        self.timers.append(when)

    def set_watchdog(self, delay: float) -> None:
        self.watchdogs.append(delay)

    def hand_to_app(self, push: dl.Push) -> bool:
        self.handed.append(push)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        self.tokens.append((app_id, token))

    def notice(self, notice: dl.Notice) -> None:
        pass


def connected_daemon() -> tuple[PushDaemon, FakeIO]:
    io = FakeIO()
    daemon = PushDaemon("d1", "ios", io, random.Random(1))
    daemon.register(0.0, "com.example.chat")
    daemon.network_changed(0.0, "wifi", "198.51.0.1")
    assert daemon.state == CONNECTING
    assert isinstance(io.links[0].sent[0], dl.Hello)
    daemon.on_frame(io.links[0], dl.HelloAck("d1"), 0.1)
    return daemon, io


def test_connect_registers_apps_and_arms_heartbeat() -> None:
    daemon, io = connected_daemon()
    assert daemon.state == CONNECTED
    assert any(isinstance(m, dl.Register) for m in io.links[0].sent)
    assert io.timers[-1] == 0.1 + 15 * 60
    daemon.on_frame(io.links[0], dl.Registered("com.example.chat", "ab" * 32), 0.2)
    assert io.tokens == [("com.example.chat", "ab" * 32)]


def test_heartbeat_acked_schedules_the_next_one() -> None:
    daemon, io = connected_daemon()
    t = 0.1 + 900
    daemon.on_timer(t)
    ping = io.links[0].sent[-1]
    assert isinstance(ping, dl.Ping)
    assert io.watchdogs == [60.0]
    daemon.on_frame(io.links[0], dl.Pong(ping.seq), t + 0.02)
    assert io.timers[-1] == t + 900
    daemon.on_timer(t + 60)  # the watchdog finds the pong already there
    assert daemon.state == CONNECTED and len(io.links) == 1
    assert daemon.heartbeats == daemon.heartbeats_acked == 1


def test_unanswered_heartbeat_means_dead_connection_and_reconnect() -> None:
    daemon, io = connected_daemon()
    t = 0.1 + 900
    daemon.on_timer(t)  # ping goes into a connection a NAT silently dropped
    daemon.on_timer(t + 60)
    assert daemon.state == BACKOFF
    assert io.links[0].closed
    retry_at = io.timers[-1]
    assert t + 60 < retry_at <= t + 60 + 3.0  # first backoff: 2 s with jitter
    daemon.on_timer(retry_at)
    assert daemon.state == CONNECTING and len(io.links) == 2


def test_backoff_grows_and_stops_without_network() -> None:
    daemon, io = connected_daemon()
    now = 1000.0
    delays = []
    for _ in range(6):
        daemon.on_link_lost(daemon.link, now)
        retry = io.timers[-1]
        delays.append(retry - now)
        daemon.on_timer(retry)
        now = retry
    assert delays[-1] > delays[0] * 8
    daemon.network_changed(now, None, "")
    assert daemon.state == OFFLINE and daemon.link is None
    links = len(io.links)
    daemon.on_timer(now + 10_000)
    assert len(io.links) == links


def test_duplicates_are_acked_but_handed_once() -> None:
    daemon, io = connected_daemon()
    push = dl.Push("m1", "ab" * 32, "com.example.chat", {"aps": {}})
    daemon.on_frame(io.links[0], push, 5.0)
    daemon.on_frame(io.links[0], push, 6.0)
    assert [p.msg_id for p in io.handed] == ["m1"]
    assert [m.msg_id for m in io.links[0].sent if isinstance(m, dl.Ack)] == ["m1", "m1"]
    assert daemon.duplicates == 1


def test_frames_from_an_abandoned_connection_are_ignored() -> None:
    daemon, io = connected_daemon()
    old = io.links[0]
    daemon.network_changed(10.0, "lte", "203.0.0.9")
    daemon.on_frame(old, dl.Push("m2", "t", "com.example.chat", {}), 10.5)
    assert io.handed == []


def test_nat_drop_loses_the_push_until_the_next_heartbeat_then_delivers_it() -> None:
    from simulator.core.trace import EventKind
    from simulator.runner import run_scenario
    from simulator.scenario import parse_scenario

    result = run_scenario(parse_scenario("""
duration: 1h
devices: [{id: p, platform: ios, user: u, network: lte, apps: [{id: com.example.chat}]}]
timeline:
  - {at: 5m, nat_drop: {device: p}}
  - {at: 6m, send: {user: u}}
"""))
    by_kind = {}
    for e in result.events:
        by_kind.setdefault(e.kind, []).append(e)
    assert by_kind[EventKind.NAT_EXPIRED][0].data["dropped"] is True
    assert len(by_kind[EventKind.FORWARDED]) == 2  # once into the dead binding, once after
    handed = by_kind[EventKind.HANDED][0].t
    assert handed > 28 * 60  # the 28-minute cellular heartbeat had to fail first
    assert len(by_kind[EventKind.CONNECTED]) == 2


# ---- every (state, input): impossible ones raise, possible ones act -----------------

FRAMES = {
    dl.Hello: dl.Hello("d1", "ios", "a"), dl.HelloAck: dl.HelloAck("d1"), dl.Ping: dl.Ping(1),
    dl.Pong: dl.Pong(1), dl.Register: dl.Register("app"),
    dl.Registered: dl.Registered("com.example.chat", "tok"), dl.Unregister: dl.Unregister("a", "t"),
    dl.Push: dl.Push("m9", "tok", "com.example.chat", {}), dl.Ack: dl.Ack("m9"),
    dl.ReportAddress: dl.ReportAddress("d1", "a"), dl.Status: dl.Status(True),
    dl.Notice: dl.Notice("com.example.chat", "tok", "deleted_messages"),
}
# What a provider may send in each state, per mode; everything else is a protocol error.
POSSIBLE = {
    (PERSISTENT, CONNECTING): {dl.HelloAck, dl.Push, dl.Notice},
    (PERSISTENT, CONNECTED): {dl.Pong, dl.Push, dl.Registered, dl.Notice},
    (IP_CALLBACK, CONNECTING): {dl.HelloAck},
    (IP_CALLBACK, LISTENING): {dl.Registered, dl.Notice},
}


class RecordingIO(FakeIO):
    def __init__(self) -> None:
        super().__init__()
        self.notices: list[dl.Notice] = []
        self.listening: str | None = None

    def notice(self, notice: dl.Notice) -> None:
        self.notices.append(notice)

    def listen(self, daemon, address) -> None:  # noqa: ANN001
        self.listening = address


def daemon_in(mode: str, state: str) -> tuple[PushDaemon, RecordingIO]:
    """A daemon with a live link in ``state`` (a ping outstanding when connected)."""
    io = RecordingIO()
    daemon = PushDaemon("d1", "ios", io, random.Random(1), mode=mode)
    daemon.register(0.0, "com.example.chat")
    daemon.network_changed(0.0, "wifi", "198.51.0.1")
    if state != CONNECTING:
        daemon.on_frame(daemon.link, dl.HelloAck("d1"), 0.1)
    if state == CONNECTED:
        daemon.on_timer(1000.0)  # the heartbeat is due: Ping(1) goes out
    assert daemon.state == state and daemon.link is not None
    return daemon, io


@pytest.mark.parametrize(("mode", "state"), list(POSSIBLE), ids=lambda v: str(v))
@pytest.mark.parametrize("kind", list(FRAMES), ids=lambda k: k.__name__)
def test_every_frame_a_state_cannot_receive_is_a_protocol_error(mode, state, kind) -> None:
    daemon, io = daemon_in(mode, state)
    link = daemon.link
    if kind not in POSSIBLE[(mode, state)]:
        with pytest.raises(DaemonProtocolError, match=kind.__name__):
            daemon.on_frame(link, FRAMES[kind], 2000.0)
        return
    daemon.on_frame(link, FRAMES[kind], 2000.0)
    if kind is dl.HelloAck:
        assert daemon.state == (CONNECTED if mode == PERSISTENT else LISTENING)
    elif kind is dl.Pong:
        assert daemon.heartbeats_acked == 1
    elif kind is dl.Push:
        assert [p.msg_id for p in io.handed] == ["m9"] and dl.Ack("m9") in link.sent
    elif kind is dl.Registered:
        assert io.tokens == [("com.example.chat", "tok")]
        assert link.closed == (mode == IP_CALLBACK)  # ip-callback hangs up once registered
    else:
        assert io.notices == [FRAMES[dl.Notice]]


@pytest.mark.parametrize("seq", [1, 2])
def test_a_pong_that_answers_no_ping_is_a_protocol_error(seq) -> None:
    daemon, _ = daemon_in(PERSISTENT, CONNECTED)
    if seq == 1:
        daemon.on_frame(daemon.link, dl.Pong(1), 1000.1)  # the one pong owed
    with pytest.raises(DaemonProtocolError, match="answers no ping"):
        daemon.on_frame(daemon.link, dl.Pong(seq), 1000.2)


@pytest.mark.parametrize("kind", list(FRAMES), ids=lambda k: k.__name__)
def test_only_an_ip_callback_daemon_takes_calls_and_only_pushes_and_notices(kind) -> None:
    persistent, _ = daemon_in(PERSISTENT, CONNECTED)
    with pytest.raises(DaemonProtocolError):
        persistent.on_callback(FRAMES[kind], 2000.0)
    listening, io = daemon_in(IP_CALLBACK, LISTENING)
    if kind in (dl.Push, dl.Notice):
        listening.on_callback(FRAMES[kind], 2000.0)
        assert len(io.handed) + len(io.notices) == 1
    else:
        with pytest.raises(DaemonProtocolError):
            listening.on_callback(FRAMES[kind], 2000.0)


@pytest.mark.parametrize("mode", [PERSISTENT, IP_CALLBACK])
def test_offline_and_backoff_ignore_late_frames_and_timers(mode) -> None:
    daemon, io = daemon_in(mode, CONNECTING)
    old = daemon.link
    daemon.on_link_lost(old, 1.0)
    assert daemon.state == BACKOFF
    for msg in FRAMES.values():
        daemon.on_frame(old, msg, 1.5)  # the abandoned link's frames: expected, ignored
    daemon.network_changed(2.0, None, "")
    assert daemon.state == OFFLINE
    daemon.on_timer(10_000.0)
    assert daemon.state == OFFLINE and io.handed == [] and io.tokens == []


def test_recent_ids_remember_at_least_keep_and_at_most_twice() -> None:
    """The duplicate filter forgets only ids older than the newest ``keep``."""
    seen = RecentIds(4)
    assert [seen.add(f"m{i}") for i in range(9)] == [True] * 9
    assert len(seen) <= 8 and all(f"m{i}" in seen for i in range(5, 9))
    assert not seen.add("m8") and "m0" not in seen
    assert seen.add("m0")  # forgotten, so taken again


def test_the_connect_deadline_counts_from_the_handshake_not_the_queue() -> None:
    """A load worker's link that waited 25 s for a handshake slot still gets its 30 s."""
    io = FakeIO()
    daemon = PushDaemon("d1", "ios", io, random.Random(1))
    daemon.network_changed(0.0, "wifi", "198.51.0.1")
    first = io.links[0]
    daemon.handshake_started(FakeLink(), 25.0)  # not this attempt's link: no effect
    daemon.handshake_started(first, 25.0)
    daemon.on_timer(30.0)  # the deadline armed at connect fires and finds it moved
    assert daemon.state == CONNECTING and not first.closed and io.timers[-1] == 55.0
    daemon.on_timer(55.0)
    assert daemon.state == BACKOFF and first.closed
