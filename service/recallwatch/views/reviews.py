"""The labels of a review (``/review``): what reviewers stored for a mined set, as the ``labels:``
oracle reads them. The review pages, the label files they serve and the mirrored label file of
the daemon all read them here."""

from __future__ import annotations

from datetime import UTC, datetime

from recallwatch.mining.oracles.labels import ReviewLabel
from recallwatch.store import Store

__all__ = ["review_labels"]


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
