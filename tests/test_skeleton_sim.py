"""The walking skeleton in sim mode: determinism, a simulated day, the demo."""

import json
from pathlib import Path

from typer.testing import CliRunner

from simulator.cli import app
from simulator.core.trace import EventKind, read_jsonl
from simulator.runner import lifecycle, run_scenario
from simulator.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "scenarios" / "hello.yaml"


def test_same_seed_gives_byte_identical_traces(tmp_path) -> None:
    scenario = load_scenario(HELLO)
    run_scenario(scenario, trace_path=tmp_path / "a.jsonl")
    run_scenario(scenario, trace_path=tmp_path / "b.jsonl")
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a == (tmp_path / "b.jsonl").read_bytes()
    assert len(a.splitlines()) > 5


def test_other_seed_differs_only_in_ids_and_timings(tmp_path) -> None:
    scenario = load_scenario(HELLO)
    run_scenario(scenario, seed=1, trace_path=tmp_path / "a.jsonl")
    run_scenario(scenario, seed=2, trace_path=tmp_path / "b.jsonl")
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert [e.kind for e in a] == [e.kind for e in b]
    assert [e.data.get("token") for e in a] != [e.data.get("token") for e in b]
    volatile = {"msg", "token", "address", "at", "latency_s", "new", "old", "idle_s"}
    strip = [{k: v for k, v in e.data.items() if k not in volatile} for e in a]
    assert strip == [{k: v for k, v in e.data.items() if k not in volatile} for e in b]


def test_hello_lifecycle_is_the_whole_story() -> None:
    result = run_scenario(load_scenario(HELLO))
    assert lifecycle(result.events) == [
        EventKind.TOKEN_REGISTERED, EventKind.TOKEN_REGISTERED, EventKind.TOKEN_STORED,
        EventKind.SENT, EventKind.ACCEPTED, EventKind.FORWARDED, EventKind.DELIVERED,
        EventKind.HANDED,
    ]
    assert result.delivered_ratio() == 1.0
    assert result.check_expectations() == []


def test_a_day_of_heartbeats_for_100_devices() -> None:
    scenario = parse_scenario("""
name: day
duration: 24h
networks: {wifi: {latency: 10ms, nat_timeout: 2h}, lte: {latency: 40ms, nat_timeout: 2h}}
devices:
  - {id: home, count: 50, platform: ios, network: wifi}
  - {id: street, count: 50, platform: android, network: lte}
""")
    result = run_scenario(scenario)
    connected = {e.data["device"]: e.t for e in result.events if e.kind == EventKind.CONNECTED}
    assert len(connected) == 100
    # each daemon pings every interval after its HelloAck (one connection all day)
    expected = 0
    for device, t in connected.items():
        interval = 15 * 60 if device.startswith("home") else 28 * 60
        hello_ack_at = t + (0.01 if device.startswith("home") else 0.04)
        expected += int((24 * 3600 - hello_ack_at) // interval)
    beats = [e for e in result.events if e.kind == EventKind.HEARTBEAT]
    assert result.heartbeats == expected
    assert len(beats) == 0 or len(beats) == expected
    assert all(e.kind != EventKind.DISCONNECTED for e in result.events)


def test_demo_prints_the_timeline() -> None:
    out = CliRunner().invoke(app, ["demo"])
    assert out.exit_code == 0, out.output
    for step in ("registers", "issues token", "stores the token", "sends a notification",
                 "accepts it", "forwards it", "receives it and acks", "gets the notification"):
        assert step in out.output


def test_run_writes_a_trace(tmp_path) -> None:
    trace = tmp_path / "t.jsonl"
    out = CliRunner().invoke(app, ["run", str(HELLO), "--trace", str(trace)])
    assert out.exit_code == 0, out.output
    kinds = [json.loads(line)["kind"] for line in trace.read_text().splitlines()]
    assert "handed" in kinds


def test_broken_expectation_exits_1(tmp_path) -> None:
    text = HELLO.read_text().replace("latency_p95_max: 1s", "latency_p95_max: 1ms")
    path = tmp_path / "strict.yaml"
    path.write_text(text)
    out = CliRunner().invoke(app, ["run", str(path)])
    assert out.exit_code == 1
    assert "latency_p95_max" in out.output and "observed" in out.output


def test_app_server_authenticates_to_apns_with_a_provider_token() -> None:
    import asyncio

    from app_server.senders import Notification
    from simulator.core.clock import run_virtual
    from simulator.world import build_world

    async def check() -> tuple[int, str | None, str]:
        world = build_world(load_scenario(HELLO), asyncio.get_running_loop())
        sender = world.app_server.senders["ios"]
        req = sender.build("ab" * 32, Notification(), "com.example.chat")
        bare = world.providers.apns.handle(req, None)  # no provider token at all
        signed = sender._authorize(req).header("authorization") or ""
        return bare.status, bare.json()["reason"], signed

    status, reason, header = run_virtual(check())
    assert (status, reason) == (403, "MissingProviderToken")
    assert header.startswith("bearer ey")  # an ES256 JWT the lab's APNs trusts
