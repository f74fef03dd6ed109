"""Typed trace events: every kind has a record, the bus refuses anything else, and a
trace file round-trips through JSON Lines and matches the generated schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simulator.cli import app
from simulator.core.events import EVENT_TYPES, EventKind, TraceError, TraceEvent, trace_schema
from simulator.core.fate import Fate, fate_of
from simulator.core.msgids import MessageIds
from simulator.core.trace import JsonlWriter, Recorder, Trace, read_jsonl
from simulator.runner import run_scenario
from simulator.scenario import load_scenario

HELLO = Path(__file__).resolve().parents[1] / "scenarios" / "hello.yaml"
TEXT = st.text(max_size=12)
_SCALARS = {
    msgspec.inspect.StrType: TEXT,
    msgspec.inspect.IntType: st.integers(-(2**53), 2**53),
    msgspec.inspect.FloatType: st.floats(allow_nan=False, allow_infinity=False),
    msgspec.inspect.BoolType: st.booleans(),
    msgspec.inspect.NoneType: st.none(),
}


def _values(t: msgspec.inspect.Type) -> st.SearchStrategy:
    if isinstance(t, msgspec.inspect.UnionType):
        return st.one_of(*(_values(x) for x in t.types))
    return _SCALARS[type(t)]


def _events(cls: type[TraceEvent]) -> st.SearchStrategy[TraceEvent]:
    info = msgspec.inspect.type_info(cls)
    fields = {f.name: _values(f.type) for f in info.fields if f.name != "t"}
    t = st.integers(0, 10**12).map(lambda n: n / 1e6)  # what a trace line keeps: 1 µs
    return st.builds(lambda t, kw: cls(t=t, **kw), t, st.fixed_dictionaries(fields))


ANY_EVENT = st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.kind)).flatmap(_events)


def test_every_kind_has_its_record() -> None:
    assert set(EVENT_TYPES) == set(EventKind)
    assert all(cls.kind == kind for kind, cls in EVENT_TYPES.items())
    assert EventKind("note") and not hasattr(EVENT_TYPES[EventKind.NOTE], "what")


@settings(max_examples=150, deadline=None)
@given(events=st.lists(ANY_EVENT, max_size=20))
def test_jsonl_round_trips_every_record(tmp_path_factory, events: list[TraceEvent]) -> None:
    path = tmp_path_factory.mktemp("trace") / "t.jsonl"
    writer = JsonlWriter(path)
    for ev in events:
        writer(ev)
    writer.close()
    assert read_jsonl(path) == events


VALIDATOR = jsonschema.Draft202012Validator(trace_schema())


@settings(max_examples=150, deadline=None)
@given(event=ANY_EVENT)
def test_every_record_matches_the_schema(event: TraceEvent) -> None:
    VALIDATOR.validate(json.loads(event.to_json()))


def test_the_bus_refuses_unknown_kinds_and_fields() -> None:
    trace = Trace(lambda: 1.5)
    seen = Recorder()
    trace.subscribe(seen)
    trace.emit(EventKind.PROVIDER_ID, msg="a", provider_msg="0:1%ab")
    with pytest.raises(TraceError, match="unknown trace event kind 'nope'"):
        trace.emit("nope", msg="a")
    with pytest.raises(TraceError, match="what"):
        trace.emit(EventKind.NOTE, what="retry", msg="a")
    with pytest.raises(TraceError, match="provider_msg"):
        trace.emit(EventKind.PROVIDER_ID, msg="a")
    assert [(e.t, e.kind, e.data) for e in seen.events] == [
        (1.5, "provider_id", {"msg": "a", "provider_msg": "0:1%ab"})]


def test_a_real_trace_matches_the_schema_and_reads_back(tmp_path: Path) -> None:
    result = run_scenario(load_scenario(HELLO), trace_path=tmp_path / "t.jsonl")
    for line in (tmp_path / "t.jsonl").read_text().splitlines():
        VALIDATOR.validate(json.loads(line))
    back = read_jsonl(tmp_path / "t.jsonl")
    assert back == [msgspec.structs.replace(e, t=round(e.t, 6))
                    for e in result.events[:len(back)]]
    assert not any(e.kind == EventKind.NOTE for e in back)  # hello.yaml has no note action


def test_schema_command_prints_the_trace_schema() -> None:
    out = CliRunner().invoke(app, ["schema", "--trace"])
    assert out.exit_code == 0
    schema = json.loads(out.output)
    assert schema["discriminator"]["propertyName"] == "kind"
    assert {"Sent", "ProviderId", "SendFailed"} <= set(schema["$defs"])


def test_one_fate_from_any_order_of_hops() -> None:
    assert fate_of(["handed", "sent", "delivered"]) == Fate.HANDED
    assert fate_of(["sent", "accepted", "rejected"]) == Fate.ACCEPTED  # the app server retries
    assert fate_of(["sent", "rejected", "send_failed"]) == Fate.REJECTED
    assert fate_of(["sent", "accepted", "forwarded", "stored"]) == Fate.IN_FLIGHT
    assert fate_of(["sent"], polled=True) == Fate.STORED
    assert [f for f in Fate if f.settled] == [Fate.HANDED, Fate.NOT_HANDED,
                                              Fate.DROPPED_BY_RULE, Fate.REJECTED,
                                              Fate.EXPIRED, Fate.COLLAPSED, Fate.DROPPED]


def test_message_ids_follow_a_provider_name_to_the_app_servers() -> None:
    ids = MessageIds()
    trace = Trace(lambda: 0.0)
    trace.subscribe(ids.learn)
    trace.emit(EventKind.PROVIDER_ID, msg="app-1", provider_msg="0:17%ab")
    assert ids.canonical("0:17%ab") == "app-1" and ids.canonical("0:17%ab/3") == "app-1/3"
    assert ids.provider_ids("app-1") == ("0:17%ab",)


def test_the_trace_page_lists_every_kind() -> None:
    page = (HELLO.parents[1] / "docs" / "trace.md").read_text()
    assert [k for k in EventKind if f"| `{k}` | `{EVENT_TYPES[k].__name__}` |" not in page] == []
