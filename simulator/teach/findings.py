"""Findings: rules run on a run's trace that name what costs battery or loses messages.

In the manner of AT&T's ARO "best practices": each rule reads the trace and
the run's figures, and when it fires it says what happened in one line with
the numbers of this run, gives the evidence, and names the lesson page that
explains it. Nothing here is hard-coded to a scenario.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.core.events import EventKind
from simulator.durations import human_duration, plain_number

if TYPE_CHECKING:
    from simulator.report import Report


@dataclass(frozen=True)
class Finding:
    rule: str
    title: str
    lesson: str
    group: str | None = None
    evidence: list[str] = field(default_factory=list)
    figures: dict[str, float | int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_device(report: Report, kind: str) -> Counter[str]:
    return report.result.per_device(kind)


def _nat_heartbeat(report: Report) -> list[Finding]:
    """Heartbeats longer than the NAT's idle timeout: the mapping dies between beats."""
    expired = _per_device(report, EventKind.NAT_EXPIRED)
    connects = _per_device(report, EventKind.CONNECTED)
    out = []
    for spec in report.scenario.devices:
        ids = report.groups[spec.id]
        n_expired = sum(expired[i] for i in ids)
        if not n_expired:
            continue
        hb = spec.heartbeat or report.scenario.heartbeat
        beat = hb.wifi if spec.network == "wifi" else hb.cellular
        nat = report.scenario.link(spec.network).nat_timeout
        reconnects = sum(max(connects[i] - 1, 0) for i in ids)
        lat = [d.latency for d in report.by_group()[spec.id] if d.latency is not None]
        worst = max(lat, default=0.0)
        longer = nat is not None and beat > nat
        title = (f"{spec.id}: heartbeat every {human_duration(beat)}"
                 + (f" is longer than the NAT timeout ({human_duration(nat)})" if longer and nat
                    else " lets the NAT forget the connection")
                 + f": {reconnects} reconnects, messages delayed up to {human_duration(worst)}")
        out.append(Finding(
            "heartbeat-vs-nat", title, "docs/lessons/nat-timeout.md", spec.id,
            [f"{n_expired} NAT mappings expired on {len(ids)} device(s) between heartbeats",
             f"{reconnects} reconnects after the first connection",
             f"slowest message handed after {human_duration(worst)}"],
            {"nat_expired": n_expired, "reconnects": reconnects, "max_latency_s": round(worst, 3),
             "heartbeat_s": beat, **({"nat_timeout_s": nat} if nat else {})}))
    return out


def _radio_j(report: Report, group: str) -> float:
    ids = report.groups[group]
    by = report.result.energy_by_cause
    return sum(j for i in ids for c, j in by.get(i, {}).items() if c != "baseline") / len(ids)


def _polling(report: Report) -> list[Finding]:
    """A polling app against the push group of the same run: radio energy and waiting."""
    specs = report.scenario.devices
    push = [s for s in specs if s.apps and all(a.kind == "push" for a in s.apps)]
    base = min(push, key=lambda s: _radio_j(report, s.id)) if push else None
    base_j = _radio_j(report, base.id) if base else 0.0
    polls = _per_device(report, EventKind.POLL)
    out = []
    for spec in specs:
        app = next((a for a in spec.apps if a.kind == "poll"), None)
        if app is None:
            continue
        ids = report.groups[spec.id]
        n_polls = sum(polls[i] for i in ids)
        poll_j = sum(report.result.energy_by_cause.get(i, {}).get("poll", 0.0)
                     for i in ids) / len(ids)
        radio = _radio_j(report, spec.id)
        figures: dict[str, float | int] = {"polls": n_polls, "poll_j": round(poll_j, 3),
                                           "radio_j": round(radio, 3)}
        every = human_duration(app.interval or 0)
        evidence = [f"{n_polls} polls on {len(ids)} device(s), {plain_number(poll_j)} J "
                    "a device for them"]
        if base is not None and base_j > 0:
            ratio = radio / base_j
            figures |= {"ratio": round(ratio, 3), "push_radio_j": round(base_j, 3)}
            title = f"{spec.id}: polling every {every} costs {plain_number(ratio, 2)}x push"
            evidence.append(f"radio energy {plain_number(radio)} J a device against "
                            f"{plain_number(base_j)} J for {base.id} (push)")
        else:
            title = f"{spec.id}: polling every {every} spends {plain_number(poll_j)} J on polls"
        lat = report.latency(report.by_group()[spec.id])
        if lat["p50"] is not None:
            figures["latency_p50_s"] = lat["p50"]
            evidence.append(f"news waits {human_duration(lat['p50'])} (median) for the next poll")
        out.append(Finding("polling-cost", title, "docs/lessons/polling-vs-push.md", spec.id,
                           evidence, figures))
    return out


def _misdelivered(report: Report) -> list[Finding]:
    """A message handed on a device to a user it was not for."""
    wrong = [d for d in report.outcome.deliveries if d.misdelivered]
    if not wrong:
        return []
    binding = report.scenario.app_server.token_binding
    head = "token filed under the user" if binding == "user" else "messages to the wrong user"
    return [Finding(
        "token-binding", f"{head}: {len(wrong)} misdelivered", "docs/lessons/shared-phone.md",
        None, [f"{d.id} for {d.user} handed on {d.device} to {d.handed_to}" for d in wrong[:10]],
        {"misdelivered": len(wrong)})]


def _lost(report: Report) -> list[Finding]:
    """Messages the provider threw away (expired, collapsed, dropped)."""
    out = []
    for spec in report.scenario.devices:
        deliveries = report.by_group()[spec.id]
        lost = Counter(str(f) for f in (d.fate for d in deliveries) if f.lost)
        if lost:
            text = ", ".join(f"{n} {f}" for f, n in sorted(lost.items()))
            out.append(Finding("store-lost", f"{spec.id}: the provider threw away {text}",
                               "docs/lessons/offline-store.md", spec.id,
                               [f"{sum(lost.values())} of {len(deliveries)} messages never "
                                "reached the device"], dict(lost)))
    return out


def _unnoticed_address(report: Report) -> list[Finding]:
    """The network renumbered a device without it noticing: its connection is dead until
    a heartbeat goes unanswered."""
    changes = _per_device(report, "ip_changed_unnoticed")
    out = []
    for spec in report.scenario.devices:
        ids = report.groups[spec.id]
        n = sum(changes[i] for i in ids)
        if not n:
            continue
        lat = [d.latency for d in report.by_group()[spec.id] if d.latency is not None]
        worst = max(lat, default=0.0)
        out.append(Finding(
            "unnoticed-address", f"{spec.id}: {n} address change(s) the device did not notice: "
            f"messages delayed up to {human_duration(worst)}", "docs/lessons/commute.md",
            spec.id, [f"{n} unnoticed renumbering(s) on {len(ids)} device(s)",
                      f"slowest message handed after {human_duration(worst)}"],
            {"unnoticed": n, "max_latency_s": round(worst, 3)}))
    return out


# platform rule (the trace's ``rule`` event) -> what it does, and the lesson that explains it
PLATFORM_RULES: dict[str, tuple[str, str]] = {
    "doze": ("normal priority waits for a maintenance window while the phone dozes",
             "docs/lessons/doze.md"),
    "standby_bucket": ("the app's standby bucket limits its jobs, alarms and network",
                       "docs/lessons/android-standby.md"),
    "fcm_hp_quota": ("the bucket's daily quota of high-priority messages is used up "
                     "(Android 12 and lower)", "docs/lessons/android-standby.md"),
    "fcm_downgrade": ("FCM sends high priority that showed no notification as normal",
                      "docs/lessons/android-standby.md"),
    "stopped_app": ("a force-stopped app gets nothing until the user opens it",
                    "docs/lessons/notification-vs-data.md"),
    "oem_killer": ("the maker's battery saver killed the app: data waits or is lost, "
                   "notifications are shown by the system", "docs/lessons/notification-vs-data.md"),
    "ios_background_budget": ("background pushes past the budget (about three an hour) wait "
                              "or are dropped", "docs/lessons/ios-background.md"),
    "ios_force_quit": ("a force-quit app gets no background pushes until it is opened",
                       "docs/lessons/ios-background.md"),
    "low_power_mode": ("Low Power Mode defers background pushes",
                       "docs/lessons/ios-background.md"),
    "nse_timeout": ("the service extension ran out of time: the original content was shown",
                    "docs/lessons/ios-background.md"),
    "live_activity_budget": ("priority-10 Live Activity updates past the budget go as "
                             "priority 5", "docs/lessons/ios-background.md"),
}


def _platform_rules(report: Report) -> list[Finding]:
    """A platform rule held, downgraded or dropped messages: which, how many, where."""
    out = []
    outcome = report.outcome
    for rule, acted in sorted(outcome.rule_acted.items()):
        if not acted:
            continue
        what, lesson = PLATFORM_RULES.get(rule, ("a platform rule acted", "docs/trace.md"))
        effects = outcome.rule_effects.get(rule, {})
        shown = ", ".join(f"{n} {e}" for e, n in sorted(effects.items())
                          if e not in ("released", "moved", "allowed"))
        last = Counter(report.group_of.get(d.device or "", "?") for d in outcome.deliveries
                       if d.held_by == rule)
        evidence = [f"{n} message(s) of {g} were last held by it" for g, n in sorted(last.items())]
        evidence += [f"{d.id} on {d.device}: {d.fate}" for d in outcome.deliveries
                     if d.held_by == rule][:5]
        out.append(Finding(f"held-by-{rule}", f"{rule}: {shown} ({what})", lesson, None,
                           evidence, {"messages": acted, **effects}))
    return out


RULES = (_nat_heartbeat, _polling, _misdelivered, _lost, _unnoticed_address, _platform_rules)


def findings(report: Report) -> list[Finding]:
    """Every rule's findings on ``report``'s run, in rule order."""
    return [f for rule in RULES for f in rule(report)]
