"""ip-callback delivery, Android Doze windows, reinstall tokens, NAT timeout groups."""

import random

import pytest

from simulator.core.trace import EventKind
from simulator.runner import run_scenario
from simulator.scenario import NatTimeoutSpec, ScenarioError, parse_scenario
from simulator.world import draw_nat_timeout

IPC = """
seed: 3
duration: 2h
mode: ip-callback
networks:
  wifi: {latency: 10ms}
  lte: {latency: 40ms, nat_timeout: 30m}
devices:
  - {id: pub, platform: ios, user: a, network: wifi, apps: [{id: chat}]}
  - {id: natted, platform: android, user: b, network: lte, apps: [{id: chat}]}
  - {id: moved, platform: ios, user: c, network: wifi, apps: [{id: chat}]}
timeline:
  - {at: 1m, send: {user: a}}
  - {at: 1m, send: {user: b}}
  - {at: 5m, change_address: {device: moved, unreported: true}}
  - {at: 6m, send: {user: c}}
  - {at: 30m, change_address: {device: moved}}
"""


def _handed(result, device):
    return [e for e in result.events if e.kind == EventKind.HANDED and e.data["device"] == device]


def _failures(result, device):
    return [e for e in result.events if e.kind == EventKind.CALLBACK_FAILED
            and e.device == device]


def test_ip_callback_reaches_a_public_address_and_shows_why_it_fails_otherwise():
    result = run_scenario(parse_scenario(IPC))
    # a public address: the provider dials and delivers in well under a second
    (pub,) = _handed(result, "pub")
    assert pub.t < 61.0
    # behind the carrier NAT: every dial is refused, nothing ever arrives
    assert _handed(result, "natted") == []
    assert {e.data["callback_failed"] for e in _failures(result, "natted")} == {"nat"}
    # an unreported address change: the provider dials the old address...
    fails = _failures(result, "moved")
    assert fails and fails[0].data["callback_failed"] == "unreachable"
    # ...and the message waits until the next report (at 30 min), late but not lost
    (moved,) = _handed(result, "moved")
    assert 1800.0 <= moved.t < 1801.0
    # no persistent connection, so no heartbeats at all
    assert result.heartbeats == 0


def test_ip_callback_reports_are_priced_as_address_reports():
    import asyncio

    from simulator.core.clock import run_virtual
    from simulator.world import build_world

    async def go():
        world = build_world(parse_scenario(IPC), asyncio.get_running_loop())
        from simulator.runner import run_world

        await run_world(world, 3600.0)
        return world.devices["moved"].energy_by_cause()

    causes = run_virtual(go())
    assert causes.get("address_report", 0) > 0
    assert "heartbeat" not in causes


DOZE = """
seed: 2
duration: 5h
devices:
  - id: pixel
    platform: android
    user: ann
    network: wifi
    apps:
      - {id: chat}
      - {id: mail, kind: poll, interval: 15m}
timeline:
  - {at: 10m, doze: {device: pixel}}
  # distinct collapse keys: FCM would otherwise keep only the newest of the two
  - {at: 20m, send: {user: ann, app: chat, priority: normal, title: later, collapse: k1}}
  - {at: 30m, send: {user: ann, app: chat, priority: high, title: now, collapse: k2}}
"""


def test_doze_holds_normal_priority_until_a_maintenance_window():
    result = run_scenario(parse_scenario(DOZE))
    notes = [(e.t, e.doze) for e in result.events if e.kind == EventKind.DOZE]
    # idle at 10m; maintenance 1 h later; idle again 30 s after; next window 2 h later
    assert notes[:4] == [(600.0, "idle"), (4200.0, "awake"), (4230.0, "idle"),
                         (11430.0, "awake")]
    handed = {e.data["msg"]: e.t for e in result.events if e.kind == EventKind.HANDED
              and e.data.get("via") != "poll"}
    times = sorted(handed.values())
    assert len(times) == 2
    assert 1800.0 <= times[0] < 1801.0          # high priority goes straight through
    assert 4200.0 <= times[1] < 4230.0          # normal waits for the maintenance window


def test_doze_defers_periodic_work_to_maintenance_windows():
    result = run_scenario(parse_scenario(DOZE))
    polls = [e.t for e in result.events if e.kind == EventKind.POLL]
    dozing = [(600.0, 4200.0), (4230.0, 11430.0), (11460.0, 18000.0)]
    for t in polls:
        assert not any(a < t < b for a, b in dozing), f"a poll ran at {t} while dozing"
    assert any(4200.0 <= t < 4230.0 for t in polls)  # the deferred poll ran in the window


def test_doze_is_ignored_on_ios():
    result = run_scenario(parse_scenario(DOZE.replace("android", "ios")))
    assert not [e for e in result.events if e.kind == EventKind.DOZE]


def test_reinstall_changes_the_token_and_old_messages_do_not_reach_the_new_install():
    import asyncio

    from simulator.core.clock import run_virtual
    from simulator.world import build_world

    async def go():
        world = build_world(parse_scenario(DOZE.replace("android", "ios")),
                            asyncio.get_running_loop())
        device = world.devices["pixel"]
        device.power_on()
        await asyncio.sleep(5.0)
        first = device.apps["chat"].token
        device.reinstall("chat")
        await asyncio.sleep(5.0)
        return first, device.apps["chat"].token

    first, second = run_virtual(go())
    assert first and second and first != second


@pytest.mark.parametrize("spec", [
    NatTimeoutSpec(dist="uniform", low=300, high=1800),
    NatTimeoutSpec(dist="choice", values=[255, 600, 7440]),
    NatTimeoutSpec(dist="lognormal", median=900, sigma=0.8, low=120, high=7440),
    NatTimeoutSpec(dist="fixed", value=600),
])
def test_nat_timeouts_are_drawn_within_their_distribution_and_repeat_with_the_seed(spec):
    a = [draw_nat_timeout(spec, random.Random(4)) for _ in range(200)]
    b = [draw_nat_timeout(spec, random.Random(4)) for _ in range(200)]
    assert a == b
    lo = spec.low if spec.low is not None else min(spec.values or [spec.value or 0])
    hi = spec.high if spec.high is not None else max(spec.values or [spec.value or 1e9])
    assert all(lo <= v <= hi for v in a)


def test_a_group_gets_its_own_nat_timeouts_and_short_ones_cost_reconnects():
    text = """
seed: 9
duration: 3h
devices:
  - id: g
    count: 6
    platform: ios
    network: lte
    nat_timeout: {dist: choice, values: [5m, 4h]}
    apps: [{id: chat}]
"""
    import asyncio

    from simulator.core.clock import run_virtual
    from simulator.runner import run_world
    from simulator.world import build_world

    async def go():
        world = build_world(parse_scenario(text), asyncio.get_running_loop())
        await run_world(world, 3 * 3600.0)
        return [(d.interfaces["lte"].path.conditions.nat_timeout, d.daemon.reconnects)
                for d in world.devices.values()]

    rows = run_virtual(go())
    assert {t for t, _ in rows} == {300.0, 14400.0}
    for timeout, reconnects in rows:
        if timeout == 300.0:
            assert reconnects >= 3  # every 28-min heartbeat finds the binding gone
        else:
            assert reconnects == 0


def test_a_nat_timeout_spec_without_its_parameters_is_refused():
    with pytest.raises(ScenarioError, match="uniform needs"):
        parse_scenario("devices: [{id: x, platform: ios, nat_timeout: {dist: uniform, low: 1m}}]")
