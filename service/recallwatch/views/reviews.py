"""The labels of a review (``/review``): what reviewers stored for a mined set, as the ``labels:``
oracle reads them. The review pages, the label files they serve and the mirrored label file of
the daemon all read them here."""

from __future__ import annotations

from datetime import UTC, datetime

from recallwatch.mining.oracles.labels import ReviewLabel
from recallwatch.store import FnEstimate, Store

__all__ = ["review_audit", "review_labels"]


def review_labels(store: Store, key: str) -> list[ReviewLabel]:
    """The stored labels of a set as the ``labels:`` oracle's ``ReviewLabel``s."""
    return [
        ReviewLabel(
            r.query_id,
            r.doc_id,
            r.label,  # type: ignore[arg-type]
            r.reviewer,
            datetime.fromtimestamp(r.labelled_at, UTC),
        )
        for r in store.reviews.labels(key)
    ]


def review_audit(store: Store, run: str | None, key: str) -> FnEstimate | None:
    """The daemon's latest FN estimate of the reviewed mined set (its key is the fingerprint).

    Its details carry the filter curve and, where people labelled too, the judge's agreement.
    """
    if run is None:
        return None
    for row in store.queue.checkpoints(run, newest_first=True):
        if row.mining_fingerprint == key:
            return store.views.exported_fn_estimate(row)
    return None
