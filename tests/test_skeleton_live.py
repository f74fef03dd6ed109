"""The walking skeleton over real sockets: HTTP/2 to the provider, MQTT to the device."""

from pathlib import Path

import pytest

from simulator.core.trace import EventKind
from simulator.runner import lifecycle, run_scenario
from simulator.scenario import load_scenario

HELLO = Path(__file__).resolve().parents[1] / "scenarios" / "hello.yaml"

pytestmark = pytest.mark.live


def test_live_hello_delivers_over_http2_and_mqtt() -> None:
    scenario = load_scenario(HELLO)
    live = run_scenario(scenario, live=True, time_scale=0.02)
    sim = run_scenario(scenario)
    assert live.http_versions == ["HTTP/2"]  # negotiated by ALPN over TLS
    assert lifecycle(live.events) == lifecycle(sim.events)
    handed = [e for e in live.events if e.kind == EventKind.HANDED]
    assert len(handed) == 1 and handed[0].data["app"] == "com.example.chat"
    connected = [e for e in live.events if e.kind == EventKind.CONNECTED]
    assert connected[0].data["address"].startswith("127.")  # its own loopback address
    assert live.check_expectations() == []


def test_live_android_delivers_through_fcm_over_http() -> None:
    text = HELLO.read_text().replace("platform: ios", "platform: android").replace(
        "alice-iphone", "alice-pixel")
    from simulator.scenario import parse_scenario

    scenario = parse_scenario(text)
    live = run_scenario(scenario, live=True, time_scale=0.02)
    sim = run_scenario(scenario)
    assert "HTTP/1.1" in live.http_versions  # the OAuth token, then the v1 send
    assert lifecycle(live.events) == lifecycle(sim.events)
    accepted = [e for e in live.events if e.kind == EventKind.ACCEPTED]
    assert accepted and accepted[0].data["provider"] == "fcm"
    assert len([e for e in live.events if e.kind == EventKind.HANDED]) == 1


NAT_LESSON = """
name: live-nat
seed: 3
duration: 30s
networks: {wifi: {latency: 5ms, nat_timeout: 1s}}
heartbeat: {wifi: 4s, cellular: 4s, ack_timeout: 1s}
devices:
  - {id: phone, platform: ios, user: ann, network: wifi, apps: [{id: com.example.chat}]}
timeline:
  - at: 2500ms
    send: {user: ann, title: late}
"""


def test_live_carrier_nat_drops_idle_binding_and_push_arrives_after_reconnect() -> None:
    from simulator.scenario import parse_scenario

    result = run_scenario(parse_scenario(NAT_LESSON), live=True)
    kinds = [e.kind for e in result.events]
    assert EventKind.NAT_EXPIRED in kinds  # the relay forgot the idle binding
    nat = next(e for e in result.events if e.kind == EventKind.NAT_EXPIRED)
    assert nat.data["live"] is True and nat.data["device"] == "phone"
    sent = next(e for e in result.events if e.kind == EventKind.SENT)
    handed = [e for e in result.events if e.kind == EventKind.HANDED]
    assert len(handed) == 1  # late, not lost, and only once
    connects = [e.t for e in result.events if e.kind == EventKind.CONNECTED]
    assert len(connects) >= 2 and handed[0].t > connects[1] > sent.t
    assert handed[0].t - sent.t > 1.0  # it waited for the heartbeat to fail


def test_live_broker_restart_loses_nothing_the_provider_holds() -> None:
    from simulator.scenario import parse_scenario

    result = run_scenario(parse_scenario("""
duration: 60s
devices: [{id: p, platform: ios, user: u, network: wifi, apps: [{id: com.example.chat}]}]
timeline:
  - {at: 1s, broker_restart: {down_for: 2s}}
  - {at: 2s, send: {user: u}}
"""), live=True)
    notes = [e for e in result.events if e.kind == EventKind.BROKER_RESTART]
    assert notes and notes[0].live is True
    handed = [e for e in result.events if e.kind == EventKind.HANDED]
    connected = [e.t for e in result.events if e.kind == EventKind.CONNECTED]
    assert len(handed) == 1 and len(connected) >= 2
    assert handed[0].t >= connected[-1]  # held by the provider until the device was back
