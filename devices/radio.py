"""Radio state machines and their energy, priced lazily from the traffic log.

Per interface: IDLE -> promotion -> CONNECTED (data power) -> tail stages -> IDLE
(duty-cycled paging). No timers: each transfer first settles the time since the
previous one (tail for at most the tail's length, idle for the rest), so the
cost of a radio is exact at any instant without one callback per state change.

Profiles come from Huang et al., MobiSys 2012, Table 3 and 4, and the ARO
defaults (``docs/sources.md#energy``); the 5G ones (and ``lte-2021``, their 4G
baseline) from Narayanan et al., SIGCOMM 2021, Table 2, with Xu et al., SIGCOMM
2020, for the longer tail (``docs/sources.md#5g``). Figures the papers do not
publish are marked unconfirmed there; every one is a profile field.
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
# 3G with the timers ARO encodes for AT&T UMTS (Qian et al., IMC 2010): promotion
# about 2 s from idle, DCH 5 s, then FACH 12 s, with ARO's default state powers.
UMTS_ATT = replace(UMTS, name="3g-att", promotion_w=0.53, promotion_s=2.0,
                   tail=((0.70, 5.0), (0.35, 12.0)))
# 3G as Balasubramanian et al., IMC 2009, Table 1 price it: 3.5 J to ramp up and
# send, then 0.62 W for 12.5 s, 0.02 W maintenance. Promotion split as 2 s (Qian).
UMTS_2009 = replace(UMTS, name="3g-2009", promotion_w=1.75, promotion_s=2.0,
                    tail=((0.62, 12.5),), idle_w=0.02)

# 4G and 5G measured on 2020 handsets (Pixel 5, Galaxy S20 Ultra) by Narayanan et
# al., SIGCOMM 2021, Table 2: the tail (RRC_CONNECTED with DRX) power per network
# and the 4G->5G switch power, inactivity timer about 10 s. Their powers leave the
# phone's own baseline out, so compare these profiles with each other (and with
# ``lte-2021``), not with the 2012 ``lte``. The promotion length, idle paging and
# data-power figures are not in the table: chosen, unconfirmed (docs/sources.md#5g).
_NR_TAIL_S = 10.0
LTE_2021 = replace(LTE, name="lte-2021", promotion_w=0.178, tail=((0.178, _NR_TAIL_S),))


def _nr(name: str, switch_w: float, tail_w: float, *, up: float, down: float,
        beta_w: float, tail_s: float = _NR_TAIL_S) -> RadioProfile:
    """A 5G profile from Table 2: ``switch_w`` is the 4G->5G switch (NSA) or the
    promotion (SA), for 0.5 s (unconfirmed); the tail is the DRX power."""
    return replace(LTE, name=name, promotion_w=switch_w, promotion_s=0.5,
                   tail=((tail_w, tail_s),), beta_w=beta_w, up_mbps=up, down_mbps=down)


# Verizon NSA low-band: the default "5g".
NR_NSA = _nr("5g-nsa", 0.799, 0.249, up=10.0, down=60.0, beta_w=2.0)
NR_NSA_MMWAVE = _nr("5g-nsa-mmwave", 1.494, 1.092, up=50.0, down=1000.0, beta_w=3.0)
NR_NSA_TMOBILE = _nr("5g-nsa-tmobile", 0.699, 0.260, up=10.0, down=60.0, beta_w=2.0)
# T-Mobile SA low-band: no 4G anchor; 0.245 W is its promotion in Table 2.
NR_SA = _nr("5g-sa", 0.245, 0.593, up=10.0, down=60.0, beta_w=2.0)
# Xu et al., SIGCOMM 2020 (NSA, another network and handset) see a tail of about
# 20 s: the Verizon NSA powers with that tail.
NR_NSA_LONG_TAIL = _nr("5g-nsa-20s", 0.799, 0.249, up=10.0, down=60.0, beta_w=2.0,
                       tail_s=20.0)

PROFILES: dict[str, RadioProfile] = {"lte": LTE, "3g": UMTS, "wifi": WIFI, "5g": NR_NSA}
"""The default profile of each interface kind."""

NAMED_PROFILES: dict[str, RadioProfile] = {
    p.name: p for p in (LTE, LTE_2021, UMTS, UMTS_ATT, UMTS_2009, WIFI, NR_NSA,
                        NR_NSA_MMWAVE, NR_NSA_TMOBILE, NR_SA, NR_NSA_LONG_TAIL)}
"""Every profile by name: a scenario picks one per interface kind."""


def interface_of(name: str) -> str:
    """The interface kind a profile name belongs to (``5g-sa`` -> ``5g``)."""
    return name.split("-", 1)[0]


def profile_named(name: str, kind: str | None = None) -> RadioProfile:
    """The profile called ``name`` (a kind such as ``5g`` gives its default).

    Raises ``ValueError`` with the known names, or when ``kind`` is given and the
    profile belongs to another interface kind.
    """
    profile = PROFILES.get(name) or NAMED_PROFILES.get(name)
    if profile is None:
        known = ", ".join(sorted(set(PROFILES) | set(NAMED_PROFILES)))
        raise ValueError(f"unknown radio profile {name!r}; known: {known}")
    if kind is not None and interface_of(profile.name) != kind:
        raise ValueError(f"radio profile {name!r} is for {interface_of(profile.name)}, "
                         f"not {kind}")
    return profile


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
        by = self.by_cause  # charged inline: every transfer after a pause comes here
        if upto > start:
            cause = self._last_cause
            self.energy += tail_j
            by[cause] = by.get(cause, 0.0) + tail_j
            self.high_power_s += upto - start
            if upto < now and self.on_state is not None:
                self.on_state(self._last_end + self.profile.tail_s, IDLE, cause)
        if idle_j:
            self.energy += idle_j
            by["idle"] = by.get("idle", 0.0) + idle_j
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
