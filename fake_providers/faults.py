"""Scripted failures for any provider look-alike: what mock-server users ask for most.

A :class:`FaultPlan` is sans-IO: the provider core asks :meth:`FaultPlan.check`
for each request's token and applies what comes back (a status and reason, a
``retry-after``, extra latency); the front end applies latency and outage modes.
The same plan is filled from a scenario file (:meth:`FaultPlan.update` with a
mapping), from the admin HTTP API, or from Python, and it knows nothing of APNs
or FCM: reasons are whatever strings the provider speaks.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

OUTAGE_MODES = (None, "unavailable", "shutdown", "drop")
"""``unavailable``: every request gets 503; ``shutdown``: 503 then the connection ends
with GOAWAY (new connections too); ``drop``: connections are cut without a word."""


@dataclass(slots=True)
class FaultRule:
    """One scripted answer.

    ``token`` is an exact token, a prefix ending in ``*``, or None for any request.
    ``count`` is how many matching requests it answers (None: until removed).
    ``status`` None makes a latency-only rule (the request is otherwise handled normally).
    """

    status: int | None = None
    reason: str | None = None
    token: str | None = None
    count: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    timestamp: int | None = None  # for 410s: ms since epoch (None: the provider's "now")
    id: int = 0
    hits: int = 0

    def matches(self, token: str | None) -> bool:
        if self.token is None:
            return True
        if token is None:
            return False
        if self.token.endswith("*"):
            return token.startswith(self.token[:-1])
        return token == self.token

    @property
    def spent(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RULE_FIELDS = frozenset(FaultRule.__dataclass_fields__) - {"id", "hits"}


class FaultError(ValueError):
    """A fault description that cannot be applied (bad mode, bad field)."""


@dataclass
class FaultPlan:
    """Rules checked in order (token-specific and next-N alike), a base latency, an outage mode."""

    rules: list[FaultRule] = field(default_factory=list)
    latency: float = 0.0
    outage: str | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    # what a core calls ---------------------------------------------------------
    def check(self, token: str | None) -> FaultRule | None:
        """The first live rule matching ``token``; its use is counted and spent rules leave."""
        if not self.rules:
            return None
        for rule in self.rules:
            if rule.matches(token):
                rule.hits += 1
                if rule.spent:
                    self.rules.remove(rule)
                return rule
        return None

    @property
    def quiet(self) -> bool:
        """Nothing scripted at all (the hot path's shortcut)."""
        return not self.rules and self.outage is None and self.latency == 0.0

    # how rules get in ----------------------------------------------------------
    def add(self, rule: FaultRule | None = None, **fields: Any) -> FaultRule:
        if rule is None:
            unknown = set(fields) - _RULE_FIELDS
            if unknown:
                raise FaultError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
            rule = FaultRule(**fields)
        _check_rule(rule)
        rule.id = next(self._ids)
        self.rules.append(rule)
        return rule

    def fail_token(self, token: str, status: int, reason: str, **kw: Any) -> FaultRule:
        """Every request to ``token`` (or a prefix ``abc*``) gets ``status``/``reason``."""
        return self.add(status=status, reason=reason, token=token, **kw)

    def fail_next(self, n: int, status: int, reason: str, **kw: Any) -> FaultRule:
        """The next ``n`` requests, whatever their token, get ``status``/``reason``."""
        return self.add(status=status, reason=reason, count=n, **kw)

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def set_outage(self, mode: str | None) -> None:
        if mode in ("", "none", "off"):
            mode = None
        if mode not in OUTAGE_MODES:
            raise FaultError(f"outage mode must be one of none, unavailable, shutdown, drop; "
                             f"got {mode!r}")
        self.outage = mode

    def set_latency(self, seconds: float) -> None:
        if not _seconds(seconds):
            raise FaultError(f"latency must be 0 to {MAX_SECONDS:g} seconds")
        self.latency = float(seconds)

    def clear(self) -> None:
        self.rules.clear()
        self.latency = 0.0
        self.outage = None

    def update(self, spec: dict[str, Any]) -> list[FaultRule]:
        """Apply a mapping as found in a scenario file or an admin request.

        ``{"latency": 0.2, "outage": "unavailable", "rules": [{"token": "ab*",
        "status": 410, "reason": "Unregistered"}, ...]}``; a mapping with ``status``
        at the top is taken as a single rule. Returns the rules added.
        """
        if not isinstance(spec, dict):
            raise FaultError("a fault description is a mapping")
        spec = dict(spec)
        added: list[FaultRule] = []
        if "latency" in spec:
            self.set_latency(_number(spec.pop("latency"), "latency"))
        if "outage" in spec:
            self.set_outage(spec.pop("outage"))
        rules = spec.pop("rules", None)
        if rules is None and spec:
            rules = [spec]
            spec = {}
        if spec:
            raise FaultError(f"unknown key(s): {', '.join(sorted(spec))}")
        if rules is not None:
            if not isinstance(rules, list):
                raise FaultError("rules must be a list")
            for r in rules:
                if not isinstance(r, dict):
                    raise FaultError("each rule is a mapping")
                try:
                    added.append(self.add(**r))
                except TypeError as exc:  # wrong value types
                    raise FaultError(str(exc)) from None
        return added

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FaultPlan:
        plan = cls()
        plan.update(spec)
        return plan

    def to_dict(self) -> dict[str, Any]:
        return {"latency": self.latency, "outage": self.outage,
                "rules": [r.to_dict() for r in self.rules]}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name} must be a number of seconds")
    return float(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MAX_SECONDS = 1e7
"""Longest delay, latency or Retry-After a fault may script (about 116 days)."""


def _seconds(value: Any) -> bool:
    """A number from 0 to MAX_SECONDS (NaN and infinity would stall or skip every sleep)."""
    return (_whole(value) or isinstance(value, float)) and 0 <= value <= MAX_SECONDS


def _check_rule(rule: FaultRule) -> None:
    """Refuse a rule whose fields have the wrong type or range (from JSON, YAML or Python),
    so a bad rule fails where it is added, not in the middle of a later request."""
    if rule.status is not None and not (_whole(rule.status) and 100 <= rule.status <= 599):
        raise FaultError(f"status must be an HTTP status (100-599), got {rule.status!r}")
    for name in ("reason", "token"):
        if getattr(rule, name) is not None and not isinstance(getattr(rule, name), str):
            raise FaultError(f"{name} must be a string")
    if rule.count is not None and not (_whole(rule.count) and rule.count >= 1):
        raise FaultError("count must be a whole number, at least 1")
    if rule.timestamp is not None and not (_whole(rule.timestamp) and
                                           0 <= rule.timestamp < 2**63):
        raise FaultError("timestamp must be milliseconds since the epoch")
    if not _seconds(rule.delay):
        raise FaultError(f"delay must be 0 to {MAX_SECONDS:g} seconds")
    if rule.retry_after is not None and not _seconds(rule.retry_after):
        raise FaultError(f"retry_after must be 0 to {MAX_SECONDS:g} seconds")
