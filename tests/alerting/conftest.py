"""Fixtures of the alerting tests: real HTTP receivers on loopback, a store, a held-out set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.alerting.helpers import QUERIES
from tests.helpers.receivers import receiver  # noqa: F401 - real HTTP receivers
from tests.helpers.serve import serve  # noqa: F401 - `recallwatch serve` subprocesses


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """A synthetic held-out set of ``QUERIES`` queries with one relevant document each."""
    return write_heldout(
        tmp_path_factory.mktemp("h"), num_docs=500, num_queries=QUERIES, relevant_per_query=1
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store."""
    s = Store.open(tmp_path / "rw.db")
    yield s
    s.close()
