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


def test_a_nat_storm_the_workers_never_saw_end_is_not_back_and_its_losses_count() -> None:
    entry = FaultRecord.starting(parse_fault("nat-reset@1"), 1.0)  # cancelled: no answer
    samples = [Sample(float(t), 10, 0, 0, 0) for t in range(8)]  # a silent drop: all "up"
    scheduled = [0.5, 1.5, 4.0, 6.5]
    seen = {0, 1}
    [report] = fault_report([entry], samples, 10, scheduled, 0.0, seen.__contains__, 10.0)
    assert report.reconnected_after_s is None  # not 0.0: the count never moved
    assert (report.messages_in_window, report.lost) == (3, 2)


def test_delivery_is_not_back_before_the_phones_are() -> None:
    entry = FaultRecord.starting(parse_fault("broker-restart@1"), 1.0)
    entry.ended = 1.5
    # the API stalls in the storm (nothing more accepted), so the backlog looks empty
    # while the phones are away (1 s to 6 s)
    samples = [Sample(float(t), 10 if t < 1 or t >= 6 else 4, 10 * t, n, n)
               for t in range(10) for n in [10 * t if t >= 6 else min(10 * t, 12)]]
    [report] = fault_report([entry], samples, 10, [], 0.0, lambda seq: True, 10.0)
    assert report.reconnected_after_s == 5.0
    assert report.delivery_recovered_after_s == 5.0  # at 6 s, not at 2 s
