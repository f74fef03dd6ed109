"""Scenario runs that stream: the outcome built as events arrive, the trace written as it
goes, the bus building only what someone listens for, every heartbeat traced."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.events import (
    Accepted,
    Delivered,
    Forwarded,
    Handed,
    Heartbeat,
    ProviderId,
    Sent,
    encode_lines,
)
from simulator.core.fate import HOPS, fate_of
from simulator.core.trace import JsonlWriter, Recorder, Trace, read_jsonl
from simulator.outcomes import Delivery, OutcomeStream, analyse, initial_users
from simulator.report import Report
from simulator.run_stream import TIMELINE_CANDIDATES, timeline_candidates
from simulator.runner import run_scenario
from simulator.scenario import Scenario, load_scenario
from simulator.teach.timeline import device_lanes

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _key(outcome, times: bool = True):  # noqa: ANN001, ANN202
    return ([(d.id, d.kind, d.device, d.app, sorted(d.hops.items() if times else d.hops),
              d.attempts, d.reason,
              d.failed, d.misdelivered, d.handed_to) for d in outcome.deliveries],
            outcome.retries, outcome.tokens_pruned, outcome.topics_without_recipients)


@pytest.fixture(scope="module")
def nat() -> Scenario:
    return load_scenario(SCENARIOS / "nat-timeout.yaml")


@pytest.fixture(scope="module")
def kept(nat: Scenario):  # noqa: ANN201
    return run_scenario(nat)


def test_streamed_outcome_is_the_trace_read_afterwards(nat: Scenario, kept) -> None:  # noqa: ANN001
    assert kept.streamed is not None and kept.streamed.deliveries
    assert _key(kept.streamed) == _key(analyse(kept.events, initial_users(nat)))


def test_a_run_that_keeps_no_trace_has_the_same_figures(nat: Scenario, kept,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lean = run_scenario(nat, keep_events=False, trace_paths=(path,), timeline=True)
    assert lean.events == []
    assert _key(lean.outcome) == _key(kept.outcome)
    assert Report(lean).as_dict() == Report(kept).as_dict()
    # the file written as the run went is the kept trace, line for line
    assert path.read_bytes() == encode_lines(kept.events)
    replayed = analyse(read_jsonl(path), initial_users(nat))
    assert _key(replayed, times=False) == _key(kept.outcome, times=False)
    for a, b in zip(replayed.deliveries, kept.outcome.deliveries, strict=True):
        # the file's times are rounded to the microsecond
        assert all(abs(a.hops[h] - b.hops[h]) <= 1e-6 for h in b.hops)


def test_hops_named_before_their_provider_id_wait_for_it() -> None:
    """FCM reports hops under its own id before the app server notes that id."""
    stream = OutcomeStream({"phone": "ann"})
    for ev in (Sent(t=0.0, msg="a1", user="ann", device="phone", provider="fcm"),
               Forwarded(t=0.01, provider="fcm", msg="0:9%f", device="phone", attempt=1),
               Accepted(t=0.01, provider="fcm", msg="0:9%f"),
               Delivered(t=0.05, device="phone", msg="0:9%f"),
               ProviderId(t=0.02, msg="a1", provider_msg="0:9%f"),
               Handed(t=0.06, device="phone", msg="0:9%f", app="chat")):
        stream(ev)
    [d] = stream.finish().deliveries
    assert (d.id, d.fate, d.handed_to, d.misdelivered) == ("a1", "handed", "ann", False)
    assert set(d.hops) == {"sent", "accepted", "forwarded", "delivered", "handed"}
    assert stream.waiting_hops == 0


def test_heartbeats_keep_the_streamed_outcome_flat() -> None:
    trace = Trace(lambda: 0.0)
    stream = OutcomeStream()
    trace.subscribe(stream)
    trace.emit("heartbeat", device="warm-up")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(20_000):
        trace.emit("heartbeat", device=f"d{i % 100}")
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 20_000  # bytes: nothing kept per heartbeat
    assert stream.finish().deliveries == []


def test_the_bus_builds_only_the_kinds_someone_listens_for() -> None:
    trace = Trace(lambda: 1.0)
    hops = Recorder()
    trace.subscribe(hops, kinds={"sent"})
    assert trace.active and trace.wants("sent") and not trace.wants("radio_state")
    trace.emit("radio_state", device="d", interface="lte", state="idle", cause="x", at=0.0)
    trace.emit("sent", msg="m")
    assert [e.kind for e in hops.events] == ["sent"]
    everything = Recorder()
    unsubscribe = trace.subscribe(everything)
    trace.emit("heartbeat", device="d")
    assert [e.kind for e in everything.events] == ["heartbeat"]
    unsubscribe()
    assert not trace.wants("heartbeat")


def test_the_writer_writes_what_to_json_writes(tmp_path: Path) -> None:
    events = [Heartbeat(t=i / 3, device=f"d{i}") for i in range(JsonlWriter.BATCH + 5)]
    writer = JsonlWriter(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    for ev in events:
        writer(ev)
    writer.close()
    expected = "".join(ev.to_json() + "\n" for ev in events).encode()
    assert (tmp_path / "a.jsonl").read_bytes() == expected == (tmp_path / "b.jsonl").read_bytes()


def test_timeline_candidates_are_bounded_and_spread() -> None:
    groups = {"big": [f"b-{i}" for i in range(1000)], "small": ["s-0", "s-1"]}
    picked = timeline_candidates(groups)
    assert picked["small"] == ["s-0", "s-1"]
    assert len(picked["big"]) <= TIMELINE_CANDIDATES and picked["big"][0] == "b-0"
    assert picked["big"][-1] not in groups["big"][:900]  # reaches the end of the group


def test_the_timeline_shows_every_heartbeat_of_a_sampled_device(nat: Scenario) -> None:
    result = run_scenario(nat, keep_events=False, timeline=True)
    assert result.device_events is not None
    device, own = next((d, ev) for d, ev in result.device_events.items() if ev)
    assert {getattr(e, "device", None) for e in own} == {device}
    group = next(s for s in nat.devices if device.startswith(s.id))
    lanes = device_lanes(device, group.network, own, result.outcome.deliveries, [],
                         result.duration)
    beats = [m for m in lanes.marks if m.lane == "heartbeats"]
    assert len(beats) == result.heartbeats_by_device[device] > 0
    woke = sum(1 for e in own if e.kind == "radio_state" and e.state == "promoting"
               and e.cause == "heartbeat")
    assert sum(1 for m in beats if m.label == "heartbeat woke the radio") == woke


def test_an_app_counts_every_message_and_keeps_only_the_newest():
    from devices.apps import RECEIVED_KEPT, PushApp, Received, keep_received

    app = PushApp("chat")
    for i in range(RECEIVED_KEPT + 5):
        keep_received(app, Received(f"m{i}", float(i), {}, "push"))
    assert app.received_count == RECEIVED_KEPT + 5
    assert len(app.received) == RECEIVED_KEPT
    assert app.received[0].msg_id == "m5" and app.received[-1].msg_id == f"m{RECEIVED_KEPT + 4}"


def test_a_streaming_run_counts_what_apps_received_and_keeps_no_payloads(
        nat: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    import simulator.runner as runner

    worlds = []
    real = runner.collect

    async def spy(world, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        worlds.append(world)
        return await real(world, *a, **kw)

    monkeypatch.setattr(runner, "collect", spy)
    kept = run_scenario(nat)
    streamed = run_scenario(nat, keep_events=False)
    apps = [[a for d in w.devices.values() for a in d.apps.values()] for w in worlds]
    counts = [sum(a.received_count for a in each) for each in apps]
    assert counts[0] == counts[1] > 0  # the same messages reached the same apps
    assert sum(len(a.received) for a in apps[0]) > 0
    assert sum(len(a.received) for a in apps[1]) == 0
    assert kept.outcome.fates() == streamed.outcome.fates()


def test_a_simulated_world_keeps_a_short_activity_log_per_provider():
    import asyncio

    from simulator.scenario import parse_scenario
    from simulator.world import SIM_ACTIVITY_LIMIT, build_world

    scenario = parse_scenario("duration: 1m\ndevices: [{id: p, platform: ios, user: u}]\n")

    async def limits() -> set[int | None]:
        world = build_world(scenario, asyncio.get_running_loop())
        logs = [world.providers.apns.activity, world.providers.fcm.activity,
                world.providers.webpush.activity]
        return {log.entries.maxlen for log in logs}

    assert asyncio.run(limits()) == {SIM_ACTIVITY_LIMIT}


def test_a_device_keeps_no_instance_dict_and_deliveries_share_their_hop_times(kept) -> None:  # noqa: ANN001
    import asyncio

    from simulator.scenario import parse_scenario
    from simulator.world import build_world

    scenario = parse_scenario("duration: 1m\ndevices: [{id: p, platform: ios, user: u}]\n")

    async def device_dict() -> bool:
        world = build_world(scenario, asyncio.get_running_loop())
        return hasattr(world.devices["p"], "__dict__")

    assert not asyncio.run(device_dict())
    deliveries = kept.outcome.deliveries
    assert len({id(d.times) for d in deliveries}) == 1
    assert len({d.row for d in deliveries}) == len(deliveries)


@given(reached=st.sets(st.sampled_from(HOPS)), failed=st.booleans(), polled=st.booleans(),
       rule_dropped=st.booleans())
def test_a_delivery_reads_its_fate_from_its_own_hop_times(reached, failed, polled,  # noqa: ANN001
                                                          rule_dropped) -> None:
    d = Delivery("m", "poll" if polled else "push", 0.0, failed=failed,
                 dropped_by_rule=rule_dropped)
    for kind in reached:
        d.reach(kind, 1.0)
    kinds = [*reached, "send_failed"] if failed else list(reached)
    assert d.fate == fate_of(kinds, polled=polled, rule_dropped=rule_dropped)
