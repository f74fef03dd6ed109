"""The radio model against Huang et al. 2012 (docs/sources.md#energy): lone-packet energies, tail re-arming,
and energy that never decreases."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.radio import (
    LTE,
    NR_NSA,
    PROFILES,
    UMTS,
    WIFI,
    RadioStateMachine,
    lone_transfer_energy,
)


@pytest.mark.parametrize(("profile", "paper_j"), [(LTE, 12.76), (UMTS, 7.38)])
def test_lone_small_transfer_matches_huang(profile, paper_j):
    assert lone_transfer_energy(profile) == pytest.approx(paper_j, rel=0.02)


def test_lone_small_transfer_on_wifi_matches_the_reference_arithmetic():
    """Huang quotes 0.04 J, a value rounded to two decimals; the arithmetic
    from the Table 3 means gives 0.038 J. 0.04 J +-2 % (0.0392..0.0408)
    would test the rounding, not the model, so we hold the model to the unrounded
    0.038 J within 2 % and check that it rounds to the quoted 0.04 J."""
    energy = lone_transfer_energy(WIFI)
    assert energy == pytest.approx(0.038, rel=0.02)
    assert round(energy, 2) == 0.04


def test_5g_is_the_published_nsa_profile():
    assert PROFILES["5g"] is NR_NSA and NR_NSA.name == "5g-nsa"
    assert not any(p.placeholder for p in (LTE, UMTS, WIFI, NR_NSA))


@pytest.mark.parametrize("profile", [LTE, UMTS, WIFI], ids=lambda p: p.name)
def test_a_packet_inside_the_tail_rearms_it_without_a_new_promotion(profile):
    gap = min(5.0, profile.tail_s / 2)
    radio = RadioStateMachine(profile)
    radio.transfer(0.0, 100, 100, "a")
    radio.transfer(gap, 100, 100, "b")
    assert radio.promotions == 1
    end = 1000.0
    two = radio.energy_at(end)
    alone = RadioStateMachine(profile)
    alone.transfer(0.0, 100, 100, "a")
    one = alone.energy_at(end)
    # the second packet costs only the tail it extended (plus its bytes), not a promotion
    extra = two - one
    assert extra < profile.promotion_w * profile.promotion_s + profile.tail_energy(gap) * 1.01
    assert extra > 0


@pytest.mark.parametrize("profile", [LTE, UMTS], ids=lambda p: p.name)
def test_a_packet_after_the_tail_pays_a_new_promotion(profile):
    radio = RadioStateMachine(profile)
    radio.transfer(0.0, 100, 100, "a")
    radio.transfer(profile.tail_s + profile.promotion_s + 1.0, 100, 100, "b")
    assert radio.promotions == 2


def test_lte_two_packets_five_seconds_apart_cost_one_promotion_and_a_longer_tail():
    radio = RadioStateMachine(LTE)
    first_end = radio.transfer(0.0, 100, 100, "poll")  # after the 0.26 s promotion
    radio.transfer(5.0, 100, 100, "poll")
    total = radio.settle(60.0)
    single = lone_transfer_energy(LTE)
    tail_w = LTE.tail[0][0]
    # one promotion; the tail runs on from the second packet instead of the first
    expected = single + (5.0 - first_end) * tail_w
    assert total - radio.by_cause.get("idle", 0.0) == pytest.approx(expected, rel=0.01)
    assert radio.promotions == 1


@settings(max_examples=60, deadline=None)
@given(
    profile=st.sampled_from([LTE, UMTS, WIFI, NR_NSA]),
    steps=st.lists(st.tuples(st.floats(0.0, 120.0), st.integers(0, 50_000),
                             st.integers(0, 50_000), st.booleans(), st.booleans()),
                   max_size=40),
)
def test_energy_never_decreases(profile, steps):
    radio = RadioStateMachine(profile)
    now = 0.0
    seen = 0.0
    for gap, up, down, send, toggle in steps:
        now += gap
        if toggle:
            radio.set_enabled(now, not radio.enabled)
        if send:
            radio.transfer(now, up, down, "x")
        energy = radio.energy_at(now)
        assert energy >= seen - 1e-9
        assert sum(radio.by_cause.values()) == pytest.approx(radio.energy)
        seen = energy


@settings(max_examples=60, deadline=None)
@given(
    profile=st.sampled_from([LTE, UMTS, WIFI, NR_NSA]),
    steps=st.lists(st.tuples(st.floats(0.0, 60.0), st.integers(0, 50_000), st.booleans()),
                   min_size=1, max_size=20),
    peek=st.floats(0.0, 120.0),
)
def test_energy_at_reads_only_and_agrees_with_settling(profile, steps, peek):
    """Sampling energy must not book the tail or tell ``on_state`` early: a watched
    run's trace is the same as an unwatched one's."""
    told = []
    radio = RadioStateMachine(profile, on_state=lambda *a: told.append(a))
    now = 0.0
    for gap, size, toggle in steps:
        now += gap
        if toggle:
            radio.set_enabled(now, not radio.enabled)
        now = radio.transfer(now, size, size, "x")
    before = {name: getattr(radio, name) for name in RadioStateMachine.__slots__}
    before["by_cause"] = dict(radio.by_cause)
    heard = len(told)
    peeked = radio.energy_at(now + peek)
    after = {name: getattr(radio, name) for name in RadioStateMachine.__slots__}
    after["by_cause"] = dict(radio.by_cause)
    assert after == before and len(told) == heard
    assert peeked == pytest.approx(radio.settle(now + peek), rel=1e-12, abs=1e-12)
