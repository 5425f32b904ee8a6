"""Tests of recallwatch.retry: status classes, backoff with jitter, ``Retry-After``."""

from __future__ import annotations

import pytest

from recallwatch.retry import RetryPolicy, backoff_delay, classify_status, parse_retry_after


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "ok"),
        (204, "ok"),
        (301, "terminal"),
        (400, "terminal"),
        (401, "terminal"),
        (404, "terminal"),
        (408, "retry"),
        (410, "terminal"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_classify_status(status: int, expected: str) -> None:
    assert classify_status(status) == expected


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, cap=60.0, jitter=0.5)
    low = [backoff_delay(n, policy, lambda: 0.0) for n in range(1, 9)]
    high = [backoff_delay(n, policy, lambda: 0.999999) for n in range(1, 9)]
    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert high == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0], rel=1e-5)
    assert backoff_delay(10_000, policy, lambda: 0.5) == 45.0  # no overflow at huge attempts
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-3", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == expected
