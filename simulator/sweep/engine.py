"""Spread a sweep's runs over Dask distributed and gather them into one table.

A :class:`distributed.LocalCluster` (one single-threaded worker process per core)
by default, or an existing scheduler by address so the same sweep spreads over
many machines (each worker needs PushLab installed). Each run is one task:
:func:`simulator.sweep.figures.measure` on a fully built scenario, so a run's
figures depend only on its scenario and seed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.scenario import Scenario
from simulator.sweep.figures import FIGURES, measure


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                processes: bool = True) -> Iterator[Any]:
    """A client on ``scheduler``, or on a fresh local cluster of ``workers`` processes.

    The local scheduler listens on free ports (its HTTP routes too), so clusters
    started side by side never collide.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout="10s") as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` is not a scheduler address (``tcp://HOST:PORT``), or None."""
    from distributed.comm import get_address_host_port

    if not address.strip():
        return "give an address such as tcp://10.0.0.5:8786"
    try:
        get_address_host_port(address)
    except ValueError as exc:
        return str(exc).replace("'", "")
    return None


@dataclass
class Job:
    point: dict[str, Any]  # parameter path -> its value as read back from the scenario
    seed: int
    scenario: Scenario

    def key(self) -> tuple[str, ...]:
        return (*(str(v) for v in self.point.values()), str(self.seed))

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.point.items()) + f" seed {self.seed}"


@dataclass
class Outcome:
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _row(job: Job, status: str, figures: dict[str, Any], error: str = "") -> dict[str, Any]:
    return {**job.point, "seed": job.seed, "status": status, "error": error, **figures}


def run_jobs(client: Any, jobs: list[Job], on_done: Callable[[int, int], None],
             on_row: Callable[[dict[str, Any]], None] | None = None,
             on_fail: Callable[[str], None] | None = None,
             fn: Callable[[Scenario], dict[str, Any]] = measure) -> Outcome:
    """Run every job; a failed one becomes a ``failed`` row and does not stop the rest."""
    from distributed import as_completed

    out = Outcome()
    futures = {client.submit(fn, job.scenario, pure=False): job for job in jobs}
    done = 0
    for future in as_completed(futures):
        job = futures[future]
        try:
            row = _row(job, "ok", future.result())
        except Exception as exc:  # noqa: BLE001 - a run's failure is data, not a crash
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            row = _row(job, "failed", {}, error)
            line = f"{job.describe()}: {error}"
            out.failures.append(line)
            if on_fail is not None:
                on_fail(line)
        finally:
            future.release()
        out.rows.append(row)
        if on_row is not None:
            on_row(row)
        done += 1
        on_done(done, len(jobs))
    return out


def columns(rows: list[dict[str, Any]], params: list[str]) -> list[str]:
    """Parameters, seed, status, error, the fixed figures, then energy by cause (sorted)."""
    fixed = [*params, "seed", "status", "error", *FIGURES]
    extra = sorted({k for r in rows for k in r} - set(fixed))
    return fixed + extra


def write_table(rows: list[dict[str, Any]], params: list[str], directory: Path) -> None:
    """DIR/runs.csv and DIR/runs.parquet, one row per run, sorted by point then seed."""
    import pandas as pd

    cols = columns(rows, params)
    frame = pd.DataFrame(rows, columns=cols)
    frame = frame.sort_values([*params, "seed"], kind="stable").reset_index(drop=True)
    energy = [c for c in cols if c.startswith("energy_j_")]
    frame[energy] = frame[energy].astype(float)
    ok = frame["status"] == "ok"
    frame.loc[ok, energy] = frame.loc[ok, energy].fillna(0.0)  # a cause a run never paid
    tmp_csv, tmp_pq = directory / "runs.csv.tmp", directory / "runs.parquet.tmp"
    frame.to_csv(tmp_csv, index=False)
    frame.to_parquet(tmp_pq, index=False)
    os.replace(tmp_csv, directory / "runs.csv")
    os.replace(tmp_pq, directory / "runs.parquet")


def read_table(directory: Path) -> list[dict[str, Any]]:
    """The rows already in DIR (Parquet keeps their types; CSV if that is all there is)."""
    import pandas as pd

    pq, csv = directory / "runs.parquet", directory / "runs.csv"
    if pq.exists():
        frame = pd.read_parquet(pq)
    elif csv.exists():
        frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    else:
        return []
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


class Throttle:
    """Call ``fn`` at most every ``every`` seconds (and once more by :meth:`flush`)."""

    def __init__(self, fn: Callable[[], None], every: float = 2.0) -> None:
        self.fn, self.every, self.last = fn, every, time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.fn()
            self.last = time.monotonic()

    def flush(self) -> None:
        self.fn()
