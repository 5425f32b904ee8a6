"""The alert record: stable message ids."""

from __future__ import annotations

from recallwatch.records.alert import message_id


def test_ids_are_stable() -> None:
    assert message_id("al_1", "firing") == message_id("al_1", "firing")
    assert message_id("al_1", "firing") != message_id("al_1", "resolved")
    assert message_id("al_1", "repeat", 1) != message_id("al_1", "repeat", 2)
