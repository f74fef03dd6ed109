"""What a scenario means, checked before it runs: limits, names, reach, memory.

The models in :mod:`simulator.scenario` check each field alone; this checks the
file as a whole. *Errors* make it unrunnable (a duplicate device id, a count over
the limits, a database path that is a folder, more memory than the machine has);
*warnings* flag what runs but cannot be what was meant (a send to a user nobody
is logged in as, an action after the end). Each finding carries the location of
the field it is about, so the caller can print ``file:line: field: reason``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.durations import format_duration
from simulator.limits import Limits, long_duration
from simulator.scenario import Scenario, SendAction
from simulator.scenario_android import android_findings
from simulator.scenario_daemons import daemon_findings
from simulator.scenario_ios import ios_findings

# Memory a run needs, measured with psutil's RSS before and after run_scenario in a
# fresh process (a 10-minute run, devices on LTE with Wi-Fi, two push apps each):
# 2,000 and 10,000 devices both grew by 14.7-14.9 kB per device, iOS and Android
# alike; 1,000 devices receiving 50,000 deliveries grew by 196 MB, 3.6 kB per
# delivery. Rounded up, with the interpreter and libraries as the base.
BYTES_PER_DEVICE = 16_000
BYTES_PER_DELIVERY = 4_000
BASE_BYTES = 150_000_000

SQLITE_MAGIC = b"SQLite format 3\x00"
_MEMBER = re.compile(r"^(.*)-(0|[1-9]\d*)$")


@dataclass(frozen=True, slots=True)
class Finding:
    loc: tuple[str | int, ...]
    reason: str
    error: bool = True


def check(scenario: Scenario, limits: Limits) -> list[Finding]:
    """Every error and warning, errors first; the caller raises on the first error."""
    found = [*_limits(scenario, limits), *_device_ids(scenario), *_database(scenario),
             *(Finding(loc, why) for loc, why in daemon_findings(scenario)),
             *(Finding(loc, why, error) for loc, why, error in ios_findings(scenario)),
             *(Finding(loc, why, error) for loc, why, error in android_findings(scenario))]
    errors = [f for f in found if f.error]
    if errors:
        return errors
    reach = Reach(scenario)
    found += _timeline(scenario, reach)
    memory = _memory(scenario, reach)
    if memory is not None:
        found.insert(0, memory)
    return found


def _limits(s: Scenario, limits: Limits) -> Iterator[Finding]:
    hint = "raise it with --limit {}=N or PUSHLAB_LIMITS"
    if s.duration > limits.duration:
        yield Finding(("duration",), f"{long_duration(s.duration)} is over the limit of "
                      f"{limits.describe('duration')} ({hint.format('duration')})")
    for i, entry in enumerate(s.timeline):
        if entry.at > limits.duration:
            yield Finding(("timeline", i, "at"), f"{long_duration(entry.at)} is over the "
                          f"limit of {limits.describe('duration')} ({hint.format('duration')})")
            break
    devices = 0
    for i, spec in enumerate(s.devices):
        devices += spec.count
        if devices > limits.devices:
            yield Finding(("devices", i, "count"), f"{devices:,} devices in all is over the "
                          f"limit of {limits.describe('devices')} ({hint.format('devices')})")
            break
    if len(s.timeline) > limits.timeline:
        yield Finding(("timeline",), f"{len(s.timeline):,} entries is over the limit of "
                      f"{limits.describe('timeline')} ({hint.format('timeline')})")
    sizes = {spec.id: spec.count for spec in s.devices}
    sends = 0
    for i, entry in enumerate(s.timeline):
        if entry.send is not None:
            sends += entry.send.count * sizes.get(entry.send.device or "", 1)
            if sends > limits.sends:
                yield Finding(("timeline", i, "send", "count"), f"{sends:,} notifications in "
                              f"all is over the limit of {limits.describe('sends')} "
                              f"({hint.format('sends')})")
                break


def _device_ids(s: Scenario) -> Iterator[Finding]:
    """Ids are unique, and no id is also the name of another group's member."""
    groups = {spec.id: spec.count for spec in s.devices if spec.count > 1}
    seen: dict[str, int] = {}
    for i, spec in enumerate(s.devices):
        if spec.id in seen:
            yield Finding(("devices", i, "id"), f"{spec.id!r} is already the id of "
                          f"devices.{seen[spec.id]}")
            continue
        seen[spec.id] = i
        match = _MEMBER.match(spec.id)
        if match and groups.get(match.group(1), 0) > int(match.group(2)):
            yield Finding(("devices", i, "id"), f"{spec.id!r} is also the name of a member "
                          f"of the group {match.group(1)!r} (members are named "
                          f"{match.group(1)}-0 to {match.group(1)}-{groups[match.group(1)] - 1})")


def _database(s: Scenario) -> Iterator[Finding]:
    """A SQLite store needs a regular file that is SQLite (or empty, or not there yet)."""
    spec = s.app_server
    if spec.store != "sqlite" or spec.db == ":memory:" or spec.db.startswith("file:"):
        return
    reason = sqlite_path_problem(Path(spec.db))
    if reason is not None:
        yield Finding(("app_server", "db"), f"{spec.db}: {reason}")


def sqlite_path_problem(path: Path) -> str | None:
    """Why SQLite could not keep its tokens at ``path``, or None."""
    try:
        info = path.stat()
    except FileNotFoundError:
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"no permission to create a file in {folder}"
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a database file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a device, a pipe or a socket)"
    if not os.access(path, os.R_OK | os.W_OK):
        return "no permission to read and write it"
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if head and head != SQLITE_MAGIC:
        return "is not a SQLite database"
    return None


class Reach:
    """Who and what the timeline can address: users, devices, apps, topics."""

    def __init__(self, s: Scenario) -> None:
        self.groups = {spec.id: spec.count for spec in s.devices}
        self.users: dict[str, int] = {}
        self.apps = {app.id for spec in s.devices for app in spec.apps}
        self.topics: dict[str, int] = {}
        for spec in s.devices:
            if spec.user is not None:
                self.users[spec.user] = self.users.get(spec.user, 0) + spec.count
            for app in spec.apps:
                for topic in app.topics:
                    self.topics[topic] = self.topics.get(topic, 0) + spec.count
        for entry in s.timeline:
            name, action = entry.action
            if name == "login" and action.user is not None:
                self.users.setdefault(action.user, self.size(action.device))
            elif name == "install":
                self.apps.add(action.app)
            elif name == "subscribe":
                self.topics.setdefault(action.topic, self.size(action.device))

    def size(self, device: str) -> int:
        """How many devices a name stands for (0: none)."""
        if device in self.groups:
            return self.groups[device]
        match = _MEMBER.match(device)
        return 1 if match and self.groups.get(match.group(1), 0) > int(match.group(2)) else 0

    def deliveries(self, send: SendAction) -> int:
        if send.user is not None:
            reached = self.users.get(send.user, 0)
        elif send.topic is not None:
            reached = self.topics.get(send.topic, 0)
        else:
            reached = self.size(send.device or "")
        return send.count * reached

    def send_problem(self, send: SendAction) -> tuple[str, str] | None:
        if send.user is not None and send.user not in self.users:
            return "user", f"no device has the user {send.user!r}{_known(self.users)}"
        if send.device is not None and not self.size(send.device):
            return "device", f"no device or group {send.device!r}{_known(self.groups)}"
        if send.topic is not None and send.topic not in self.topics:
            return "topic", f"no app subscribes to the topic {send.topic!r}{_known(self.topics)}"
        if send.app is not None and send.app not in self.apps:
            return "app", f"no device has the app {send.app!r}{_known(self.apps)}"
        return None


def _known(names: object) -> str:
    listed = sorted(names)  # type: ignore[call-overload]
    if not listed:
        return " (there are none)"
    shown = ", ".join(listed[:6]) + (", ..." if len(listed) > 6 else "")
    return f" (known: {shown})"


def _timeline(s: Scenario, reach: Reach) -> Iterator[Finding]:
    """Warnings: actions that reach nobody, or come after the run has ended."""
    end = format_duration(s.duration)
    for i, entry in enumerate(s.timeline):
        name, action = entry.action
        if entry.at > s.duration:
            yield Finding(("timeline", i, "at"), f"{format_duration(entry.at)} is after the "
                          f"end of the run (duration {end}): {name} never happens", False)
            continue
        if isinstance(action, SendAction):
            problem = reach.send_problem(action)
            if problem is not None:
                yield Finding(("timeline", i, name, problem[0]),
                              f"{problem[1]}: the send reaches nobody", False)
            last = entry.at + (action.count - 1) * action.every
            if problem is None and last > s.duration:
                late = action.count - int((s.duration - entry.at) // action.every) - 1
                yield Finding(("timeline", i, name, "count"), f"the last {late} of "
                              f"{action.count} sends fall after the end of the run "
                              f"(duration {end})", False)
            continue
        device = getattr(action, "device", None)
        if isinstance(device, str) and not reach.size(device):
            yield Finding(("timeline", i, name, "device"), f"no device or group {device!r}"
                          f"{_known(reach.groups)}: the {name} reaches nobody", False)
        app = getattr(action, "app", None)
        if name in ("uninstall", "subscribe", "fault") and app is not None \
                and app not in reach.apps:
            yield Finding(("timeline", i, name, "app"), f"no device has the app {app!r}"
                          f"{_known(reach.apps)}: the {name} reaches nobody", False)


def estimate_bytes(s: Scenario, reach: Reach | None = None) -> int:
    """Memory a sim run of ``s`` needs, from the constants measured above."""
    reach = reach or Reach(s)
    devices = sum(spec.count for spec in s.devices)
    deliveries = sum(reach.deliveries(e.send) for e in s.timeline if e.send is not None)
    return BASE_BYTES + devices * BYTES_PER_DEVICE + deliveries * BYTES_PER_DELIVERY


def _memory(s: Scenario, reach: Reach) -> Finding | None:
    import psutil

    need = estimate_bytes(s, reach)
    available = psutil.virtual_memory().available
    if need <= available:
        return None
    devices = sum(spec.count for spec in s.devices)
    return Finding(("devices",), f"a run needs about {need / 1e9:.1f} GB ({devices:,} devices "
                   f"at {BYTES_PER_DEVICE // 1000} kB, plus the messages) and this machine "
                   f"has {available / 1e9:.1f} GB available")

