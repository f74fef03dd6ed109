"""Bandwidth and partitions on the in-memory network."""

from simulator.core.trace import EventKind
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario

BASE = """
duration: 2h
networks: {{lte: {{latency: 40ms, nat_timeout: 2h{extra}}}}}
devices: [{{id: p, platform: ios, user: u, network: lte, apps: [{{id: com.example.chat}}]}}]
timeline:
{timeline}
"""


def run(extra: str = "", timeline: str = "  - {at: 5m, send: {user: u}}") -> list:
    return run_scenario(parse_scenario(BASE.format(extra=extra, timeline=timeline))).events


def latency(events: list) -> float:
    sent = next(e.t for e in events if e.kind == EventKind.SENT)
    return next(e.t for e in events if e.kind == EventKind.HANDED) - sent


def test_a_slow_link_adds_serialisation_time() -> None:
    fast = latency(run())
    slow = latency(run(", bandwidth: 0.01"))  # 10 kbit/s
    # the push frame (payload + overhead, a few hundred bytes) takes ~0.1-0.3 s at 10 kbit/s
    assert slow - fast > 0.05


def test_a_partition_the_phone_cannot_see_delays_until_it_heals() -> None:
    events = run(timeline="""  - {at: 5m, partition: {device: p, on: true}}
  - {at: 6m, send: {user: u}}
  - {at: 40m, partition: {device: p, on: false}}""")
    handed = [e.t for e in events if e.kind == EventKind.HANDED]
    assert len(handed) == 1
    assert handed[0] > 40 * 60  # nothing crosses before the partition heals
    reconnects = [e.t for e in events if e.kind == EventKind.CONNECTED]
    assert len(reconnects) >= 2 and reconnects[-1] > 40 * 60
