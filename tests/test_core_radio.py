import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.radio import LTE, UMTS, WIFI, RadioStateMachine, lone_transfer_energy


@pytest.mark.parametrize(("profile", "joules"), [(LTE, 12.76), (UMTS, 7.38)])
def test_lone_small_transfer_matches_huang_2012(profile, joules) -> None:
    assert lone_transfer_energy(profile) == pytest.approx(joules, rel=0.02)


def test_lone_wifi_transfer_matches_table_3_means() -> None:
    # Table 3's Wi-Fi means give 0.038 J; the paper prints it rounded as 0.04 J.
    energy = lone_transfer_energy(WIFI)
    assert energy == pytest.approx(0.038, rel=0.02)
    assert round(energy, 2) == 0.04


def test_packet_inside_tail_rearms_without_new_promotion() -> None:
    radio = RadioStateMachine(LTE)
    radio.transfer(0.0, 100, 100, "a")
    radio.transfer(5.0, 100, 100, "b")
    assert radio.promotions == 1
    radio.transfer(5.0 + LTE.tail_s + 1.0, 100, 100, "c")
    assert radio.promotions == 2


def test_two_packets_five_seconds_apart_cost_less_than_two_lone_ones() -> None:
    radio = RadioStateMachine(LTE)
    radio.transfer(0.0, 100, 100, "x")
    radio.transfer(5.0, 100, 100, "x")
    radio.energy_at(100.0)
    assert radio.by_cause["x"] < 2 * lone_transfer_energy(LTE)
    # the first tail runs from the end of the promotion until the second packet
    first_tail = (5.0 - LTE.promotion_s) * LTE.tail[0][0]
    assert radio.by_cause["x"] == pytest.approx(lone_transfer_energy(LTE) + first_tail, rel=0.01)


@given(st.lists(st.tuples(st.floats(0, 120), st.integers(0, 50_000), st.integers(0, 50_000)),
                max_size=40))
def test_energy_never_decreases(steps) -> None:
    radio = RadioStateMachine(LTE)
    now = 0.0
    last = 0.0
    for gap, up, down in steps:
        now += gap
        radio.transfer(now, up, down, "p")
        energy = radio.energy_at(now)
        assert energy >= last - 1e-9
        last = energy
