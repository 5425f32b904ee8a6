"""Failure injection: every failpoint is inert unless the test enables it by name."""

from __future__ import annotations

import os
import signal

import pytest

from recallwatch import failpoints


def test_a_failpoint_is_inert_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.crash_here(failpoints.AFTER_DECISION)
    monkeypatch.setenv(failpoints.ENV, "some-other-point")
    failpoints.crash_here(failpoints.AFTER_DECISION)
    assert kills == [] and not failpoints.enabled(failpoints.AFTER_DECISION)
    monkeypatch.setenv(failpoints.ENV, failpoints.AFTER_DECISION)
    assert failpoints.enabled(failpoints.AFTER_DECISION)
    failpoints.crash_here(failpoints.AFTER_DECISION)
    assert kills == [(os.getpid(), signal.SIGKILL)]
