"""Store-and-forward in one place: the store's own release timers, envelopes without
connections, and one timeline-action registry that every reader shares."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_apns_core import APP, T0, Clock, Sender, connect, pushes

from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from simulator import actions
from simulator.live.lab_api import DEVICE_ACTIONS
from simulator.scenario import TimelineEntry


def _lab_with_timers(clock: Clock, timers: list | None = None):
    key = generate_key()
    later = None if timers is None else lambda delay, fn: timers.append((clock.t + delay, fn))
    kw = {} if later is None else {"call_later": later}
    lab = build_lab(clock=clock, wall_clock=lambda: T0 + clock.t,
                    trusted_keys={key.key_id: key.trusted()}, **kw)
    return lab, Sender(lab, key)


def test_the_store_owns_the_release_timer_of_held_bursts() -> None:
    clock, timers = Clock(), []
    lab, send = _lab_with_timers(clock, timers)
    token = lab.issue("d1", APP)
    s = connect(lab, "d1")
    clock.t = 30.0
    assert send.send(token, apns_priority="5").response.status == 200
    assert pushes(s) == [] and [at for at, _ in timers] == [60.0]  # the next burst boundary
    clock.t, (_, fire) = 60.0, timers.pop()
    fire()
    assert len(pushes(s)) == 1


def test_an_envelope_remembers_its_connection_by_number_not_by_object() -> None:
    lab, send = _lab_with_timers(Clock())
    token = lab.issue("d1", APP)
    first = connect(lab, "d1")
    send.send(token)
    (env,) = lab.backend.store.pending("d1")
    assert not any(hasattr(v, "send") for v in dataclasses.astuple(env) if v is not None)
    assert not any(hasattr(v, "send") for v in env.extra.values())
    second = connect(lab, "d1")  # never acked on the first: sent again on the second
    assert len(pushes(first)) == 1 and len(pushes(second)) == 1
    lab.backend.flush("d1")
    assert len(pushes(second)) == 1  # not twice on the same connection


def test_every_registered_action_is_a_timeline_field_and_a_control_verb() -> None:
    fields = set(TimelineEntry.model_fields) - {"at"}
    assert fields == set(actions.ACTIONS)
    assert set(DEVICE_ACTIONS) == set(actions.device_actions())
    entry = TimelineEntry.model_validate({"at": "1m", "airplane": {"device": "p", "on": False}})
    assert entry.action == ("airplane", actions.DeviceAction(device="p", on=False))
    json.dumps(TimelineEntry.model_json_schema())


def test_an_action_parses_to_its_type_or_one_line() -> None:
    assert actions.action("outage").parse({"provider": "fcm"}).mode == "unavailable"
    with pytest.raises(ValueError, match=r"^network: Input should be"):
        actions.action("switch_network").parse({"device": "p", "network": "wire"})
    with pytest.raises(ValueError, match=r"^no action 'fly'; one of: send, "):
        actions.action("fly")
