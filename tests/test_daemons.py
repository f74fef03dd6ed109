"""Several system push daemons on one phone (devices/daemons.py), and one shared."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from devices.daemon import PushDaemon
from devices.daemons import DaemonPlan, DaemonSet
from simulator.cli import app
from simulator.core.trace import EventKind
from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import ScenarioError, parse_scenario


class _NoIO:
    def open_link(self, daemon):  # noqa: ANN001, ANN201
        return None


def _daemon() -> PushDaemon:
    return PushDaemon("p", "android", _NoIO(), random.Random(0))  # type: ignore[arg-type]


def test_a_daemon_set_routes_each_app_to_its_daemon_and_its_provider_sender():
    google, oem = _daemon(), _daemon()

    class Port:  # what DaemonSet reads of a DaemonPort
        daemon = oem
        plan = DaemonPlan("oem", ("shop",), sender="oem")

    daemons = DaemonSet(google, DaemonPlan("fcm", ("mail",), sender="android"))
    daemons.add(Port())  # type: ignore[arg-type]
    assert list(daemons) == [google, oem]
    assert daemons.for_app("shop") is oem
    assert daemons.for_app("mail") is google and daemons.for_app("other") is google
    assert daemons.sender_for("shop") == "oem" and daemons.sender_for("news") == "android"
    assert daemons.provider_of(oem) == "oem" and daemons.tag_of(oem) == "oem"
    assert daemons.tag_of(google) == ""  # the phone's own daemon keeps the plain causes


def test_a_phone_without_daemons_keeps_its_one_daemon_as_before():
    google = _daemon()
    daemons = DaemonSet(google)
    assert list(daemons) == [google] and not daemons.planned
    assert daemons.sender_for("mail") is None and daemons.provider_of(google) is None


TWO = """
seed: 5
duration: 1h
networks: {lte: {latency: 40ms, nat_timeout: 2h}}
devices:
  - id: phone
    platform: android
    network: lte
    user: ana
    apps: [{id: mail}, {id: shop}]
    daemons:
      - {provider: fcm, apps: [mail]}
      - {provider: oem, apps: [shop], heartbeat: {cellular: 10m}}
timeline:
  - {at: 7m, send: {user: ana, app: mail}}
  - {at: 8m, send: {user: ana, app: shop}}
  - {at: 20m, nat_drop: {device: phone}}
"""


@pytest.fixture(scope="module")
def two():
    return run_scenario(parse_scenario(TWO))


def test_each_daemon_connects_to_its_own_provider_and_each_app_gets_its_token_there(two):
    connected = [e.provider for e in two.events if e.kind == EventKind.CONNECTED]
    assert connected[:2] == ["fcm", "oem"]
    tokens = {e.app: e.provider for e in two.events if e.kind == EventKind.TOKEN_REGISTERED
              and getattr(e, "provider", None)}
    assert tokens == {"mail": "fcm", "shop": "oem"}


def test_the_app_server_sends_each_app_through_its_daemons_provider(two):
    deliveries = {d.app: (d.provider, d.fate) for d in two.outcome.deliveries}
    assert deliveries == {"mail": ("fcm", "handed"), "shop": ("oem", "handed")}


def test_each_daemon_keeps_its_own_heartbeats_and_reconnects_on_its_own(two):
    """A NAT drop at 20 min: the OEM daemon's heartbeat (every 10 min) goes unanswered
    at once and it is back by 22 min; Google's (every 28 min) only at 29 min, one
    ack timeout after its heartbeat at 28 min. Neither waits for the other."""
    daemons = two.daemons["phone"]["daemons"]
    assert [d["provider"] for d in daemons] == ["fcm", "oem"]
    fcm, oem = daemons
    assert oem["heartbeats"] > 2 * fcm["heartbeats"] >= 2
    assert fcm["reconnects"] == oem["reconnects"] == 1
    assert fcm["connections"] == oem["connections"] == 2
    back = [(e.provider, e.t) for e in two.events if e.kind == EventKind.CONNECTED][2:]
    assert [p for p, _ in back] == ["oem", "fcm"]
    assert 21 * 60 < back[0][1] < 22 * 60 and 29 * 60 < back[1][1] < 30 * 60


def test_an_extra_daemons_radio_time_is_priced_under_its_provider(two):
    causes = two.energy_by_cause["phone"]
    assert causes["oem:heartbeat"] > causes["heartbeat"] > 0
    assert causes["oem:reconnect"] > 0 and "oem:push" in causes


def test_the_report_shows_each_daemon_and_the_whole_phone(two):
    part = Report(two).as_dict()["daemons"]["phone"]
    assert part["daemons"] == 2 and not part["shared"]
    assert part["oem"]["apps"] == ["shop"] and part["fcm"]["apps"] == ["mail"]
    assert part["oem"]["delivered_ratio"] == part["fcm"]["delivered_ratio"] == 1.0
    assert part["oem"]["energy_j_per_day"] > part["fcm"]["energy_j_per_day"] > 0
    assert part["radio_s_per_day"] > 0 and part["promotions_per_day"] > 0


def test_a_shared_daemon_carries_every_app_over_one_connection_for_less():
    shared = TWO.replace("    daemons:\n      - ", "    daemons:\n      shared: true\n"
                         "      run:\n      - ")
    result = run_scenario(parse_scenario(shared))
    assert [e.provider for e in result.events if e.kind == EventKind.CONNECTED][:1] == ["fcm"]
    assert {d.provider for d in result.outcome.deliveries} == {"fcm"}
    assert result.outcome.count("handed") == 2
    assert not any(c.startswith("oem:") for c in result.energy_by_cause["phone"])
    two = run_scenario(parse_scenario(TWO))
    assert result.energy_j["phone"] < two.energy_j["phone"]


@pytest.mark.parametrize(("devices", "reason"), [
    ("{id: p, platform: android, apps: [{id: mail}], daemons: [{provider: oem, apps: [shop]}]}",
     r"devices\.0\.daemons\.0\.apps: 'shop' is not a push app of this device"),
    ("{id: p, platform: android, apps: [{id: mail}], "
     "daemons: [{provider: fcm, apps: [mail]}, {provider: oem, apps: [mail]}]}",
     r"devices\.0\.daemons\.1\.apps: 'mail' is already served by daemon 0"),
    ("{id: p, platform: ios, apps: [{id: mail}], daemons: [{provider: fcm}]}",
     r"devices\.0\.daemons: only an android phone runs several push daemons, not ios"),
    ("{id: p, platform: android, daemons: {run: [{provider: fcm}, {provider: fcm}]}}",
     r"one daemon per provider \(fcm twice\)"),
    ("{id: p, platform: android, daemons: [{provider: huawei}]}", r"daemons"),
])
def test_broken_daemons_are_one_line_with_the_field(devices, reason):
    with pytest.raises(ScenarioError, match=reason) as err:
        parse_scenario(f"devices:\n  - {devices}\n", "s.yaml")
    assert str(err.value).startswith("s.yaml:2: ")


def test_the_cli_refuses_a_broken_daemons_field_with_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("devices:\n  - {id: p, platform: android, daemons: [{provider: oem, "
                    "apps: [nope]}]}\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml:2: devices.0.daemons.0.apps: 'nope' is not a push app" in result.output
    assert "Traceback" not in result.output


def test_the_dashboard_shows_each_daemon_of_a_phone_and_its_connection():
    from simulator.dashboard.engine import SimEngine
    from simulator.dashboard.widgets import _connection

    engine = SimEngine(parse_scenario(TWO), paused=True)
    engine.start()
    try:
        engine.advance(60.0)
        assert engine.sync(60)
        row = next(r for r in engine.snapshot.rows if r.device_id == "phone")
    finally:
        engine.stop()
    assert row.daemons == (("fcm", "connected"), ("oem", "connected"))
    assert _connection(row).plain == "fcm ● oem ●"


LIVE = """
seed: 5
duration: 30s
heartbeat: {wifi: 10s, cellular: 10s, ack_timeout: 2s}
devices:
  - id: phone
    platform: android
    network: wifi
    user: ana
    apps: [{id: mail}, {id: shop}]
    daemons:
      - {provider: fcm, apps: [mail]}
      - {provider: oem, apps: [shop], heartbeat: {wifi: 4s}}
timeline:
  - {at: 10s, send: {user: ana, app: mail}}
  - {at: 11s, send: {user: ana, app: shop}}
"""


@pytest.mark.live
def test_live_each_daemon_has_its_own_mqtt_connection_and_provider_server():
    """Over real sockets: two MQTT logins of one phone (``phone`` and ``phone~oem``),
    the OEM's FCM-like provider on its own HTTP port, each app's push through it."""
    live = run_scenario(parse_scenario(LIVE), live=True, time_scale=0.2)
    connected = sorted(e.provider for e in live.events if e.kind == EventKind.CONNECTED)
    assert connected[:2] == ["fcm", "oem"]
    assert {d.app: (d.provider, d.fate) for d in live.outcome.deliveries} == \
        {"mail": ("fcm", "handed"), "shop": ("oem", "handed")}


def test_uninstalling_an_oem_app_is_forgotten_by_the_oem_provider_and_its_token_pruned():
    text = TWO.replace("  - {at: 20m, nat_drop: {device: phone}}",
                       "  - {at: 20m, uninstall: {device: phone, app: shop}}\n"
                       "  - {at: 25m, send: {user: ana, app: shop}}")
    result = run_scenario(parse_scenario(text))
    pruned = [e for e in result.events if e.kind == EventKind.TOKEN_PRUNED]
    assert [e.app for e in pruned] == ["shop"]
    late = [d for d in result.outcome.deliveries if d.app == "shop" and d.sent_at > 1200]
    assert late and all(d.provider == "oem" and d.fate != "handed" for d in late)


def test_the_lesson_quotes_what_its_scenario_gives():
    from pathlib import Path

    from simulator.scenario import load_scenario

    root = Path(__file__).resolve().parents[1]
    data = Report(run_scenario(load_scenario(root / "scenarios" / "two-daemons.yaml"))
                  ).as_dict()["daemons"]
    two, shared = data["two-daemons"], data["shared"]
    text = (root / "docs" / "lessons" / "two-daemons.md").read_text(encoding="utf-8")
    cost = two["energy_j_per_day"] - shared["energy_j_per_day"]
    for joules in (two["energy_j_per_day"], shared["energy_j_per_day"], cost,
                   two["radio_s_per_day"], shared["radio_s_per_day"]):
        assert f"{float(f'{joules:.3g}'):,.0f}" in text, joules
    for pct in (two["battery_percent_per_day"], shared["battery_percent_per_day"]):
        assert f"{pct:.2f} %" in text, pct
    assert f"{100 * (1 - shared['energy_j_per_day'] / two['energy_j_per_day']):.0f} %" in text
    assert f"{(two['radio_s_per_day'] - shared['radio_s_per_day']) / 60:.0f} minutes" in text
    assert f"{100 * cost / 55_440:.1f} %" in text  # of a 4000 mAh, 3.85 V battery


def test_the_html_timeline_shows_each_daemons_connection_in_the_push_lane(two):
    from simulator.teach.timeline import device_lanes

    lanes = device_lanes("phone", "lte", two.events, [], [], two.duration)
    push = [s for s in lanes.spans if s.lane == "push connection"]
    def at(t: float):  # noqa: ANN202
        return next(s for s in push if s.start <= t < s.end)

    # each connection's forgotten mapping shows from its own daemon's failed heartbeat
    # (the NAT dropped both at 20 min) until its own reconnect
    assert (at(20.5 * 60).state, at(20.5 * 60).label) == \
        ("dead mapping", "fcm: connected; oem: dead mapping")
    assert at(25 * 60).state == "connected"
    assert (at(28.5 * 60).state, at(28.5 * 60).label) == \
        ("dead mapping", "fcm: dead mapping; oem: connected")
    assert push[-1].state == "connected" and push[-1].label == "fcm: connected; oem: connected"
