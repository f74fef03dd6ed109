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
