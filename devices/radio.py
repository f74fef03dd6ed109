"""Radio state machines and their energy, priced lazily from the traffic log.

Per interface: IDLE -> promotion -> CONNECTED (data power) -> tail stages -> IDLE
(duty-cycled paging). No timers: each transfer first settles the time since the
previous one (tail for at most the tail's length, idle for the rest), so the
cost of a radio is exact at any instant without one callback per state change.

Profiles come from Huang et al., MobiSys 2012, Table 3 and 4, and the ARO
defaults (``docs/sources.md#energy``). The 3G and Wi-Fi data-power coefficients
and the idle averages are marked unconfirmed there; they are profile fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class RadioProfile:
    name: str
    promotion_w: float
    promotion_s: float
    tail: tuple[tuple[float, float], ...]  # (power W, duration s) stages after the last packet
    idle_w: float  # average paging/beacon power while idle (radio only)
    alpha_up_w_per_mbps: float
    alpha_down_w_per_mbps: float
    beta_w: float
    up_mbps: float
    down_mbps: float
    placeholder: bool = False
    _up_s_per_byte: float = field(default=0.0, init=False, repr=False, compare=False)
    _down_s_per_byte: float = field(default=0.0, init=False, repr=False, compare=False)
    _up_j_per_byte: float = field(default=0.0, init=False, repr=False, compare=False)
    _down_j_per_byte: float = field(default=0.0, init=False, repr=False, compare=False)
    _tail_w: float = field(default=-1.0, init=False, repr=False, compare=False)
    tail_s: float = 0.0  # derived: the tail's total length

    def __post_init__(self) -> None:
        object.__setattr__(self, "tail_s", sum(d for _, d in self.tail))
        # Derived per-byte figures and the single-stage tail power: every frame is
        # priced, so the hot path multiplies instead of recomputing these.
        up_s = 8e-6 / self.up_mbps
        down_s = 8e-6 / self.down_mbps
        derived = {
            "_up_s_per_byte": up_s,
            "_down_s_per_byte": down_s,
            "_up_j_per_byte": (self.alpha_up_w_per_mbps * self.up_mbps + self.beta_w) * up_s,
            "_down_j_per_byte": (self.alpha_down_w_per_mbps * self.down_mbps
                                 + self.beta_w) * down_s,
            "_tail_w": self.tail[0][0] if len(self.tail) == 1 else -1.0,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def tail_energy(self, elapsed: float) -> float:
        """Energy of the first ``elapsed`` seconds of the tail."""
        energy = 0.0
        for power, duration in self.tail:
            if elapsed <= 0:
                break
            step = duration if elapsed > duration else elapsed
            energy += power * step
            elapsed -= step
        return energy


# LTE: the tail averages base power plus 1 ms DRX on-bursts every 40 ms (Huang Table 3).
LTE = RadioProfile(
    "lte", promotion_w=1.2107, promotion_s=0.2601,
    tail=((1.060 + (1.680 - 1.060) * (1.0 / 40.0), 11.576),),
    idle_w=0.5943 * 0.0432 / 1.2802,
    alpha_up_w_per_mbps=0.43839, alpha_down_w_per_mbps=0.05197, beta_w=1.28804,
    up_mbps=5.64, down_mbps=12.74,
)
# 3G UMTS: DCH tail then FACH tail (Huang Table 3, cross-checked to 7.38 J).
UMTS = RadioProfile(
    "3g", promotion_w=0.6594, promotion_s=0.5821,
    tail=((0.8039, 8.0882), (0.6013, 0.8242)),
    idle_w=0.3742 * 0.0554 / 5.1124,
    alpha_up_w_per_mbps=0.86898, alpha_down_w_per_mbps=0.12212, beta_w=0.81788,
    up_mbps=0.93, down_mbps=2.0,
)
WIFI = RadioProfile(
    "wifi", promotion_w=0.1244, promotion_s=0.0791,
    tail=((0.1193, 0.2381),),
    idle_w=0.0772 * 0.0076 / 0.3082,
    alpha_up_w_per_mbps=0.28317, alpha_down_w_per_mbps=0.13701, beta_w=0.13286,
    up_mbps=14.0, down_mbps=20.0,
)
# 5G: a PLACEHOLDER, not measured data. LTE's structure with a longer tail, so
# lessons can show the shape; do not quote its figures.
NR_PLACEHOLDER = replace(LTE, name="5g", tail=((1.2, 20.0),), placeholder=True)

PROFILES: dict[str, RadioProfile] = {"lte": LTE, "3g": UMTS, "wifi": WIFI, "5g": NR_PLACEHOLDER}

IDLE, PROMOTING, CONNECTED = "idle", "promoting", "connected"

StateListener = Callable[[float, str, str], None]  # (time, new state, cause)


class RadioStateMachine:
    """One interface's radio; energy attributed to the cause that woke or kept it up."""

    __slots__ = ("profile", "energy", "by_cause", "promotions", "high_power_s", "_last_end",
                 "_last_cause", "_settled", "on_state", "enabled")

    def __init__(self, profile: RadioProfile, now: float = 0.0,
                 on_state: StateListener | None = None) -> None:
        self.profile = profile
        self.energy = 0.0  # joules up to ``_settled``
        self.by_cause: dict[str, float] = {}
        self.promotions = 0
        self.high_power_s = 0.0  # promotion + transfer + tail time
        self._last_end = float("-inf")
        self._last_cause = "idle"
        self._settled = now
        self.enabled = True  # an interface that is down or off draws no idle power
        self.on_state = on_state

    def _charge(self, cause: str, joules: float) -> None:
        self.energy += joules
        by = self.by_cause
        by[cause] = by.get(cause, 0.0) + joules

    def _owed(self, now: float) -> tuple[float, float, float]:
        """What [settled, now] costs, unbooked: (tail joules, where the tail stops, idle joules).

        The one place the time between transfers is priced: :meth:`settle` books
        it, :meth:`energy_at` only adds it up.
        """
        start = self._settled
        p = self.profile
        tail_end = self._last_end + p.tail_s
        if start < tail_end:
            upto = now if now < tail_end else tail_end
            if p._tail_w >= 0.0:
                tail_j = p._tail_w * (upto - start)
            else:
                tail_j = (p.tail_energy(upto - self._last_end)
                          - p.tail_energy(start - self._last_end))
            idle_j = p.idle_w * (now - upto) if upto < now and self.enabled else 0.0
            return tail_j, upto, idle_j
        return 0.0, start, p.idle_w * (now - start) if self.enabled else 0.0

    def settle(self, now: float) -> float:
        """Book [settled, now] (the rest of the tail, then idle); returns joules to ``now``.

        Tells ``on_state`` when the tail ended inside the window.
        """
        start = self._settled
        if now <= start:
            return self.energy
        tail_j, upto, idle_j = self._owed(now)
        if upto > start:
            self._charge(self._last_cause, tail_j)
            self.high_power_s += upto - start
            if upto < now and self.on_state is not None:
                self.on_state(self._last_end + self.profile.tail_s, IDLE, self._last_cause)
        if idle_j:
            self._charge("idle", idle_j)
        self._settled = now
        return self.energy

    def set_enabled(self, now: float, enabled: bool) -> None:
        """Switch the radio on or off (interface down, airplane mode)."""
        self.settle(now)
        self.enabled = enabled

    def transfer(self, now: float, up_bytes: int, down_bytes: int, cause: str) -> float:
        """Price one transfer starting at ``now``; returns when it ends (after promotion)."""
        p = self.profile
        if now > self._settled:
            self.settle(now)
        start = now
        joules = up_bytes * p._up_j_per_byte + down_bytes * p._down_j_per_byte
        if now - self._last_end >= p.tail_s:
            self.promotions += 1
            joules += p.promotion_w * p.promotion_s
            self.high_power_s += p.promotion_s
            start = now + p.promotion_s
            if self.on_state is not None:
                self.on_state(now, PROMOTING, cause)
        elif now < self._last_end:
            start = self._last_end  # still busy with the previous transfer
        # one charge for promotion and bytes (the hot path: every frame comes here)
        self.energy += joules
        by = self.by_cause
        by[cause] = by.get(cause, 0.0) + joules
        end = start + up_bytes * p._up_s_per_byte + down_bytes * p._down_s_per_byte
        self.high_power_s += end - now if end > now else 0.0
        self._last_end = end
        self._last_cause = cause
        self._settled = end
        return end

    def energy_at(self, now: float) -> float:
        """Joules spent from creation to ``now``, read-only.

        Changes nothing and calls nothing, so a chart or a dashboard may sample it
        at any instant and the trace stays exactly that of an unwatched run.
        """
        if now <= self._settled:
            return self.energy
        tail_j, _, idle_j = self._owed(now)
        return self.energy + tail_j + idle_j

    def state_at(self, now: float) -> str:
        if now < self._last_end:
            return CONNECTED
        elapsed = now - self._last_end
        return CONNECTED if elapsed < self.profile.tail_s else IDLE


def lone_transfer_energy(profile: RadioProfile, up_bytes: int = 100, down_bytes: int = 100) -> float:
    """Promotion + transfer + full tail of one small transfer on an idle radio."""
    radio = RadioStateMachine(profile, 0.0)
    radio.transfer(0.0, up_bytes, down_bytes, "probe")
    radio.settle(profile.tail_s + profile.promotion_s + 60.0)
    return radio.by_cause["probe"]
