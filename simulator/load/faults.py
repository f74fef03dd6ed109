"""Faults injected during a load run, written ``kind@at[:arg]`` on the command line.

* ``broker-restart@20[:down_for]``: the broker stops and starts again on the same
  port (``down_for`` seconds later, default 0);
* ``provider-outage@20[:seconds]``: APNs answers 503 to every send for
  ``seconds`` (default 5); the app server retries with backoff;
* ``storm@20[:fraction]``: that fraction of devices (default 0.2) changes
  address at once and reconnects (a reconnect storm);
* ``nat-reset@20``: a carrier NAT silently drops every phone's binding: nothing
  reaches the phones any more and each learns it only when it next sends (a
  heartbeat or an MQTT ping meets a reset), then reconnects (live runs with the
  lean client only).
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = {"broker-restart": 0.0, "provider-outage": 5.0, "storm": 0.2, "nat-reset": 0.0}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str
    at: float
    arg: float

    @property
    def lasts(self) -> float:
        """How long the fault itself lasts (seconds), before recovery starts."""
        return self.arg if self.kind in ("provider-outage", "broker-restart") else 0.0

    def __str__(self) -> str:
        return f"{self.kind}@{self.at:g}:{self.arg:g}"


def parse_fault(text: str) -> FaultSpec:
    """``storm@20:0.3`` -> FaultSpec("storm", 20.0, 0.3); ValueError with a reason otherwise."""
    kind, sep, rest = text.partition("@")
    kind = kind.strip()
    if kind not in KINDS or not sep:
        raise ValueError(f"fault {text!r}: write kind@seconds[:arg], kind one of "
                         f"{', '.join(KINDS)}")
    at_text, _, arg_text = rest.partition(":")
    try:
        at = float(at_text.rstrip("s"))
        arg = float(arg_text.rstrip("s")) if arg_text else KINDS[kind]
    except ValueError:
        raise ValueError(f"fault {text!r}: time and argument must be numbers") from None
    if at < 0 or arg < 0:
        raise ValueError(f"fault {text!r}: negative time or argument")
    if kind == "storm" and not 0 < arg <= 1:
        raise ValueError(f"fault {text!r}: the storm's fraction is in (0, 1]")
    return FaultSpec(kind, at, arg)
