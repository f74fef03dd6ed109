"""How a scale run counts its phases' messages: late ones of an earlier phase, and the
ones the provider collapsed while a phone was offline, are neither duplicates nor lost."""

from __future__ import annotations

import time
from types import SimpleNamespace

from simulator.core import devicelink as dl
from simulator.core.fate import Fate
from simulator.load.faults import parse_fault
from simulator.load.harness import FaultRecord, Sample, fault_report
from simulator.load.orchestrator import collapsed_by
from simulator.load.stats import Latency, WorkerTally
from simulator.load.worker import SeenSet, Worker


def _push(seq: int, phase: int) -> dl.Push:
    return dl.Push(f"m{phase}-{seq}", "tok", "app", {"seq": seq, "t": repr(time.time()),
                                                    "ph": str(phase)})


def test_a_late_message_of_an_earlier_phase_is_not_a_duplicate_of_this_one() -> None:
    worker = SimpleNamespace(seen=SeenSet(), tally=WorkerTally(), latency=Latency(),
                             bare_latency=Latency(), phase="2", devices=[])
    Worker.received(worker, _push(3, 2))  # type: ignore[arg-type]
    Worker.received(worker, _push(3, 1))  # type: ignore[arg-type]  # phase 1's, late
    assert (worker.tally.delivered, worker.tally.duplicates, worker.tally.late) == (1, 0, 1)
    Worker.received(worker, _push(3, 2))  # type: ignore[arg-type]  # a real duplicate
    assert worker.tally.duplicates == 1


def test_collapsed_messages_are_reported_apart_from_lost_ones() -> None:
    entry = FaultRecord.starting(parse_fault("storm@1"), 1.0)
    entry.ended = 1.0
    samples = [Sample(float(t), 10 if t < 1 or t > 3 else 5, 0, 0, 0) for t in range(6)]
    scheduled = [0.5, 1.5, 2.0, 2.5, 5.5]  # 1..3 in the fault's window
    outcome = {seq: (200, None, f"p{seq}") for seq in range(5)}
    fates = {"p1": Fate.COLLAPSED, "p2": Fate.STORED}
    seen = {0, 3, 4}
    [report] = fault_report([entry], samples, 10, scheduled, 0.0, seen.__contains__, 10.0,
                            collapsed_by(outcome, fates))
    assert (report.messages_in_window, report.collapsed, report.lost) == (3, 1, 1)
