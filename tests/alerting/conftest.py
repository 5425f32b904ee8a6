"""Fixtures of the alerting tests: real HTTP receivers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.alerting.receivers import OK, Receiver, Script, always
from tests.daemon.conftest import serve  # noqa: F401 - `recallwatch serve` subprocesses


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """A factory of started ``Receiver``s, all stopped at teardown."""
    started: list[Receiver] = []

    def make(script: Script | None = None) -> Receiver:
        r = Receiver(script or always(OK)).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
