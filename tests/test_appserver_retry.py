"""The retry policy: which answers are retried, how long to wait, when to stop."""

import random

from hypothesis import given
from hypothesis import strategies as st

from app_server.retry import CONNECTION_FAILED, RetryPolicy


def test_no_retry_on_4xx_except_429() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    for status in (400, 401, 403, 404, 405, 410, 413):
        assert policy.decide(1, status, None, rng) is None
    assert policy.decide(1, 429, None, rng) is not None
    assert policy.decide(1, 200, None, rng) is None


def test_5xx_and_connection_failures_are_retried_until_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(1)
    for status in (500, 503, CONNECTION_FAILED):
        assert policy.decide(1, status, None, rng) is not None
        assert policy.decide(2, status, None, rng) is not None
        assert policy.decide(3, status, None, rng) is None


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base=1.0)
    assert policy.decide(1, 503, 120.0, random.Random(1)) >= 120.0


@given(st.integers(1, 30), st.integers(0, 2**32))
def test_backoff_stays_within_the_exponential_ceiling(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=100, base=2.0, factor=2.0, cap=600.0)
    delay = policy.decide(attempt, 503, None, random.Random(seed))
    assert delay is not None
    assert 0.0 <= delay <= min(600.0, 2.0 * 2.0 ** (attempt - 1))


def test_jitter_comes_from_the_injected_stream() -> None:
    policy = RetryPolicy()
    a = [policy.decide(n, 503, None, rng) for rng in [random.Random(7)] for n in range(1, 5)]
    b = [policy.decide(n, 503, None, rng) for rng in [random.Random(7)] for n in range(1, 5)]
    assert a == b
