"""Fixtures of the notification tests: real HTTP receivers on loopback and dispatchers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recallwatch.notify.delivery import Dispatcher
from tests.helpers.receivers import receiver  # noqa: F401 - real HTTP receivers


@pytest.fixture
def dispatchers() -> Iterator[list[Dispatcher]]:
    """Dispatchers a test starts, all stopped at teardown."""
    made: list[Dispatcher] = []
    yield made
    for d in made:
        d.stop()
