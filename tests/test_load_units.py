"""The load run's pure parts: rate profiles, fault syntax, histograms, fates, recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.fate import Fate
from simulator.load.faults import parse_fault
from simulator.load.profiles import RateProfile
from simulator.load.stats import Latency, classify_undelivered, recovery_after
from simulator.load.worker import SeenSet, device_id, loopback_address, shard_of


def test_constant_profile_sends_rate_times_duration_evenly() -> None:
    p = RateProfile("constant", 100, 10)
    assert p.total == 1000
    assert p.due(0) == 0
    assert p.due(1.0) == 100
    assert p.due(5.5) == 550
    assert p.due(99) == 1000


def test_ramp_profile_sends_half_and_accelerates() -> None:
    p = RateProfile("ramp", 100, 10)
    assert p.total == 500
    assert p.due(5) == 125  # a quarter of the messages in the first half
    assert p.rate_at(5) == 50


def test_burst_profile_sends_each_second_at_its_start() -> None:
    p = RateProfile("burst", 100, 3)
    assert p.due(0) == 100
    assert p.due(0.99) == 100
    assert p.due(1.0) == 200
    assert p.due(10) == 300


@given(st.sampled_from(["constant", "ramp", "burst"]), st.floats(0, 5000), st.floats(0.5, 100),
       st.lists(st.floats(0, 200), min_size=2, max_size=20))
def test_profiles_never_go_back_and_never_overshoot(kind: str, rate: float, duration: float,
                                                    times: list[float]) -> None:
    p = RateProfile(kind, rate, duration)
    dues = [p.due(t) for t in sorted(times)]
    assert dues == sorted(dues)
    assert all(0 <= d <= p.total for d in dues)
    assert p.due(duration) == p.total


def test_bad_profile_is_refused() -> None:
    with pytest.raises(ValueError):
        RateProfile("sawtooth", 1, 1)


def test_fault_syntax() -> None:
    f = parse_fault("storm@20:0.3")
    assert (f.kind, f.at, f.arg) == ("storm", 20.0, 0.3)
    assert parse_fault("broker-restart@5s").arg == 0.0
    assert parse_fault("provider-outage@5").lasts == 5.0
    for bad in ("storm", "meteor@3", "storm@x", "storm@3:2", "provider-outage@-1"):
        with pytest.raises(ValueError):
            parse_fault(bad)


def test_histograms_merge_across_workers() -> None:
    a, b, merged = Latency(), Latency(), Latency()
    for ms in range(1, 101):
        (a if ms % 2 else b).record(ms / 1000)
    merged.merge(a.encode())
    merged.merge(b.encode())
    assert merged.count == 100
    assert merged.percentile_ms(50) == pytest.approx(50, rel=0.01)
    assert merged.percentile_ms(99) == pytest.approx(99, rel=0.01)
    assert merged.max_ms() == pytest.approx(100, rel=0.01)
    fig = merged.figures()
    assert set(fig) == {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms"}
    assert merged.buckets()["100"] == 100 and merged.buckets()["50"] == 50


def test_every_undelivered_message_gets_a_place() -> None:
    outcome = {0: (200, None, "m0"), 1: (200, None, "m1"), 2: (410, "Unregistered", ""),
               3: (0, "ClientConnectorError", ""), 4: (200, None, "m4"),
               5: (200, None, "m5")}
    fates = {"m0": Fate.STORED, "m1": Fate.IN_FLIGHT, "m4": Fate.COLLAPSED}
    online = {"d0": False, "d1": True}
    got = classify_undelivered([0, 1, 2, 3, 4, 5, 6], outcome, fates, online,
                               lambda seq: f"d{seq % 2}").as_dict()
    assert got == {
        "provider store: device offline": 1,
        "in broker or device link (forwarded, not acked)": 1,
        "rejected: 410 Unregistered": 1,
        "app server unreachable: ClientConnectorError": 1,
        "provider collapsed": 1,
        "acked by device, not counted (lost after ack)": 1,
        "not sent (run ended first)": 1,
    }


def test_recovery_time_is_from_the_fault_to_being_whole_again() -> None:
    series = [(0.0, 10), (1.0, 10), (1.5, 4), (2.0, 7), (2.6, 10), (3.0, 10)]
    assert recovery_after(series, 1.2, 10) == pytest.approx(1.4)
    assert recovery_after(series, 2.7, 10) == 0.0
    assert recovery_after([(0.0, 10), (1.0, 3)], 0.5, 10) is None


def test_seen_set_counts_each_sequence_once() -> None:
    seen = SeenSet()
    assert seen.add(5) and seen.add(70000)
    assert not seen.add(5)
    assert seen.count == 2


def test_devices_shard_and_addresses_are_unique() -> None:
    ids = {device_id(i) for i in range(5000)}
    assert len(ids) == 5000
    assert {shard_of(i, 3) for i in range(10)} == {0, 1, 2}
    addrs = {loopback_address(i) for i in range(20000)}
    assert len(addrs) == 20000 and all(a.startswith("127.") for a in addrs)
    assert loopback_address(7, 1) != loopback_address(7, 0)


def test_load_options_with_unknown_values_exit_2_and_name_the_option() -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    for args, name in ((["--client", "paho"], "client"),
                       (["--gateway-session", "sticky"], "gateway-session"),
                       (["--profile", "zigzag"], "profile"),
                       (["--android", "1.5"], "android")):
        out = CliRunner().invoke(app, ["load", "--devices", "2", "--duration", "1", *args])
        assert out.exit_code == 2, out.output
        assert name in out.output


def test_latency_buckets_are_cumulative_and_end_with_every_message() -> None:
    from simulator.load.stats import Latency

    lat = Latency()
    for seconds in (0.0005, 0.0015, 0.003, 0.0099, 0.0101, 0.5, 2.0, 30.0):
        lat.record(seconds)
    b = lat.buckets()
    assert (b["1"], b["2"], b["5"], b["10"], b["20"], b["500"], b["2000"]) == (1, 2, 3, 4, 5, 6, 7)
    assert b["10000"] == 7 and b["+Inf"] == 8  # 30 s is past the last bound
    counts = list(b.values())
    assert counts == sorted(counts)
    assert lat.figures()["p95_ms"] is not None


def test_rate_spread_reads_only_the_steady_seconds() -> None:
    from simulator.load.stats import rate_spread

    lines = [{"t": t, "delivered_rate": r} for t, r in
             ((1, 10.0), (2, 100.0), (3, 90.0), (4, 110.0), (5, 100.0), (6, 0.0))]
    assert rate_spread(lines, 6.0) == {"min": 90.0, "median": 100.0, "max": 110.0}
    assert rate_spread(lines[:3], 3.0) is None  # too short to say


def test_android_share_is_spread_over_every_shard() -> None:
    from simulator.load.worker import platform_of

    for share in (0.0, 0.3, 1.0):
        android = [i for i in range(6000) if platform_of(i, share) == "android"]
        assert abs(len(android) - share * 6000) <= 60
        for workers in (2, 3):  # each shard (i % workers) gets its part
            per_shard = [sum(1 for i in android if i % workers == k) for k in range(workers)]
            assert max(per_shard) - min(per_shard) <= 60
    assert platform_of(7, 0.3) == platform_of(7, 0.3)  # the same device, the same phone


async def test_http1_transport_carries_method_headers_and_status_both_ways() -> None:
    from aiohttp import web

    from simulator.core.http import HttpRequest
    from simulator.load.http1 import Http1Transport, HttpError

    seen: list[tuple[str, str, str | None, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("authorization"),
                     await request.read()))
        return web.Response(status=503, text="{}", headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = Http1Transport(f"http://127.0.0.1:{port}")
    try:
        for _ in range(2):  # the second request reuses the kept-alive connection
            resp = await transport.request(HttpRequest(
                "POST", "/v1/projects/p/messages:send", [("authorization", "Bearer x")], b"{}"))
            assert resp.status == 503 and resp.headers["retry-after"] == "7"
        assert seen == [("POST", "/v1/projects/p/messages:send", "Bearer x", b"{}")] * 2
        assert transport.pool._open == 1
    finally:
        await transport.aclose()
        await runner.cleanup()
    refused = Http1Transport(f"http://127.0.0.1:{port}")
    with pytest.raises((OSError, HttpError)):  # what the app server's senders retry
        await refused.request(HttpRequest("GET", "/"))


def test_summary_warns_when_the_machine_was_busy() -> None:
    from rich.console import Console

    from simulator.commands.load import BUSY_MACHINE_PERCENT, print_summary

    def shown(others: float) -> str:
        console = Console(record=True, width=120)
        print_summary({"devices": 1, "rate": 1, "profile": "constant", "duration_s": 1,
                       "broker": "mosquitto",
                       "machine": {"other_processes_cpu_percent": others}}, console)
        return console.export_text()

    assert "other processes used 80 %" in shown(80.0)
    assert "other processes" not in shown(BUSY_MACHINE_PERCENT - 1)
