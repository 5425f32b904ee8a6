"""Alert episodes: the state machine of one key, and numbered episodes of a re-opened key."""

from __future__ import annotations

import pytest

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.episodes import OpenEpisode, Transition, transition
from recallwatch.records.alert import AlertKey, Evidence
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import Clock, make_config, outbox

OPEN = OpenEpisode("al_1", opened_at=1000.0, last_notified_at=1000.0)


@pytest.mark.parametrize(
    ("episode", "firing", "now", "repeat", "expected"),
    [
        (None, False, 100.0, 60.0, "none"),
        (None, True, 100.0, 60.0, "fire"),
        (OpenEpisode("a", 0.0, 50.0), True, 100.0, 60.0, "none"),
        (OpenEpisode("a", 0.0, 40.0), True, 100.0, 60.0, "repeat"),
        (OpenEpisode("a", 0.0, 40.0), True, 100.0, None, "none"),
        (OpenEpisode("a", 0.0, 99.0), False, 100.0, 60.0, "resolve"),
        (OPEN, True, 1599.0, 600.0, "none"),
        (OPEN, True, 1600.0, 600.0, "repeat"),  # exactly one repeat interval
    ],
)
def test_transition(
    episode: OpenEpisode | None,
    firing: bool,
    now: float,
    repeat: float | None,
    expected: Transition,
) -> None:
    assert transition(episode, firing, now, repeat) == expected


def test_a_reopened_episode_is_a_new_alert_with_new_messages(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "floor", "type": "recall_floor", "floor": 0.5}])
    clock = Clock()
    alerting = Alerting(config, store, clock=clock)
    (rule,) = alerting.rules
    key = AlertKey("floor", "r", "synth", 10)

    def decide(firing: bool) -> None:
        clock.now += 60

        def build(aid: str):  # type: ignore[no-untyped-def]
            return rule.new_alert(aid, key, None, "below", "below", Evidence(), run="r")

        alerting._apply([rule.decision(key, firing, "checkpoint-200", build)])

    decide(True)
    decide(True)  # a retry of the same episode (a re-queued checkpoint): nothing new
    (first,) = store.ledger.open_alerts()
    decide(False)
    decide(True)  # the same checkpoint opens the key again (a re-decision after a resolve)
    (second,) = store.ledger.open_alerts()
    assert second.alert.id != first.alert.id
    events = outbox(store)
    assert [e for e, _, _ in events] == ["firing", "resolved", "firing"]
    assert len({m for _, _, m in events}) == 3
    decide(True)  # and that episode's id is stable too
    assert [r.alert.id for r in store.ledger.open_alerts()] == [second.alert.id]
    assert len(outbox(store)) == 3
