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
