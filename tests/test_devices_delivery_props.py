"""Property: whatever the network does, what the provider keeps reaches the right app once.

Random schedules of address changes (noticed or not), Wi-Fi <-> cellular switches,
coverage loss, airplane mode, NAT idle timeouts and an uninstall; notifications sent
throughout; then a quiet hour on a steady network so late messages can land.
"""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core.clock import run_virtual
from simulator.core.msgids import MessageIds
from simulator.core.trace import EventKind
from simulator.runner import collect, run_world
from simulator.scenario import Scenario
from simulator.world import build_world

MINUTE = 60.0
ACTIONS = ["change_address", "unreported_change", "switch_wifi", "switch_lte", "offline",
           "airplane", "reboot"]

schedules = st.lists(
    st.tuples(st.floats(1 * MINUTE, 240 * MINUTE), st.sampled_from(ACTIONS),
              st.floats(10.0, 40 * MINUTE)),
    max_size=12)
sends = st.lists(st.floats(0.5 * MINUTE, 250 * MINUTE), min_size=1, max_size=12)


def _scenario(platform, nat_timeout, schedule, send_times, uninstall_at):
    timeline = []
    for at, action, length in schedule:
        if action == "change_address":
            timeline.append({"at": at, "change_address": {"device": "phone"}})
        elif action == "unreported_change":
            timeline.append({"at": at, "change_address": {"device": "phone",
                                                          "unreported": True}})
        elif action == "switch_wifi":
            timeline.append({"at": at, "switch_network": {"device": "phone", "network": "wifi"}})
        elif action == "switch_lte":
            timeline.append({"at": at, "switch_network": {"device": "phone", "network": "lte"}})
        elif action == "offline":
            timeline.append({"at": at, "offline": {"device": "phone"}})
            timeline.append({"at": at + length, "online": {"device": "phone"}})
        elif action == "airplane":
            timeline.append({"at": at, "airplane": {"device": "phone", "on": True}})
            timeline.append({"at": at + length, "airplane": {"device": "phone", "on": False}})
        elif action == "reboot":
            timeline.append({"at": at, "reboot": {"device": "phone"}})
    # every outage is over by 5 h; the last hour is quiet on a steady network
    timeline.append({"at": 300 * MINUTE, "online": {"device": "phone"}})
    timeline.append({"at": 300 * MINUTE, "airplane": {"device": "phone", "on": False}})
    for i, at in enumerate(send_times):
        timeline.append({"at": at, "send": {"user": "ann", "title": f"n{i}"}})
    if uninstall_at is not None:
        timeline.append({"at": uninstall_at, "uninstall": {"device": "phone",
                                                           "app": "com.example.feed"}})
    return Scenario.model_validate({
        "seed": 5, "duration": 6 * 3600,
        "networks": {"wifi": {"latency": 0.01, "nat_timeout": nat_timeout},
                     "lte": {"latency": 0.04, "jitter": 0.02, "nat_timeout": nat_timeout}},
        "devices": [{"id": "phone", "platform": platform, "user": "ann", "network": "lte",
                     "interfaces": ["wifi"],
                     "apps": [{"id": "com.example.chat"}, {"id": "com.example.feed"}]}],
        "timeline": timeline,
    })


async def _run(scenario):
    world = build_world(scenario, asyncio.get_running_loop())
    device = world.devices["phone"]
    samples: list[float] = []

    def probe() -> None:
        samples.append(device.energy_j())

    for k in range(1, 72):
        world.loop.call_at(k * 300.0, probe)
    result = await collect(world, scenario.duration, None, run_world)
    return result, samples


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platform=st.sampled_from(["ios", "android"]),
       nat_timeout=st.sampled_from([5 * MINUTE, 20 * MINUTE, 45 * MINUTE, 7440.0]),
       schedule=schedules, send_times=sends,
       uninstall_at=st.one_of(st.none(), st.floats(1 * MINUTE, 250 * MINUTE)))
def test_kept_notifications_reach_the_right_app_exactly_once(platform, nat_timeout, schedule,
                                                            send_times, uninstall_at):
    scenario = _scenario(platform, nat_timeout, schedule, send_times, uninstall_at)
    result, samples = run_virtual(_run(scenario))
    events = result.events

    # the app server's name for each message, whatever the provider called it
    ids = MessageIds()
    for e in events:
        ids.learn(e)
    name = ids.canonical

    sent = {e.data["msg"]: e for e in events if e.kind == EventKind.SENT}
    accepted = {name(e.data["msg"]) for e in events if e.kind == EventKind.ACCEPTED}
    # what the provider's rules took away: collapsed, expired, dropped (uninstall)
    removed = {name(e.data["msg"]) for e in events
               if e.kind in (EventKind.COLLAPSED, EventKind.EXPIRED, EventKind.DROPPED)}
    handed: dict[str, list] = {}
    for e in events:
        if e.kind == EventKind.HANDED:
            handed.setdefault(name(e.data["msg"]), []).append(e)

    for msg, ev in sent.items():
        got = handed.get(msg, [])
        assert len(got) <= 1, f"{msg} handed {len(got)} times"
        for h in got:
            assert h.data["app"] == ev.data["app"] and h.data["device"] == "phone"
            if uninstall_at is not None and h.data["app"] == "com.example.feed":
                assert h.t < uninstall_at, "an uninstalled app got a notification"
        if msg in accepted and msg not in removed:
            uninstalled = uninstall_at is not None and ev.data["app"] == "com.example.feed" \
                and ev.t >= uninstall_at - 1.0
            if not uninstalled:
                assert got, f"{msg} kept by the provider but never handed to its app"

    assert all(b >= a - 1e-9 for a, b in zip(samples, samples[1:], strict=False)), \
        "energy decreased"
