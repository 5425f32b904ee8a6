"""Held-out texts for alerts: indexed once, outside the decision lock, or streamed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import recallwatch.heldout.texts as texts_module
from recallwatch.alerting.engine import Alerting
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, B, Clock, Run, hits, make_config, outbox


def test_texts_are_indexed_once_and_outside_the_decision_lock(
    store: Store, synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    reads: list[tuple[str, bool]] = []
    real = texts_module.stream_fields

    def counting(path: Path, *args: Any, **kwargs: Any) -> Any:
        reads.append((path.name, alerting._lock.locked()))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(texts_module, "stream_fields", counting)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    for step, n_miss in ((200, 80), (300, 50), (400, 80)):  # fire, resolve, fire again
        alerting.after_checkpoint(run.add(step, B, hits(n_miss)))
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved", "firing"]
    assert sorted(reads) == [("corpus.jsonl", False), ("queries.jsonl", False)]
    (record,) = store.ledger.open_alerts()
    assert record.alert.evidence.lost_top[0].doc_title.startswith("Document ")
    assert record.alert.evidence.lost_top[0].query_text.startswith("question ")


def test_texts_of_a_held_out_set_too_large_to_index_are_streamed(
    synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(texts_module, "TEXT_INDEX_MAX_BYTES", 1)
    index = texts_module.TextIndex()
    index.warm([synthetic.path])
    query, doc = synthetic.query_ids[0], next(iter(synthetic.qrels[synthetic.query_ids[0]]))
    queries, titles = index.lookup(synthetic.path, [query], [doc])
    assert queries[query].startswith("question ") and titles[doc].startswith("Document ")
    assert index._files == {}  # nothing was indexed


def test_an_unreadable_file_gives_no_texts_and_no_error(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "a question"}\nnot json\n')
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "body only"}\n')
    index = texts_module.TextIndex()
    index.warm([tmp_path])
    queries, titles = index.lookup(tmp_path, ["q1"], ["d1"])
    assert index._files[tmp_path / "queries.jsonl"][1] is None  # could not be indexed
    assert queries == {"q1": "a question"}  # streamed: found before the broken line
    assert titles == {"d1": "body only"}  # a document without a title shows its text
