"""How many candidates each sentence-transformers version retrieves (read from its source)."""

from __future__ import annotations

import pytest

from recallwatch.integrations.sentence_transformers.ranks import (
    _derived_range_max,
    _faiss_gpus,
    candidate_count,
    search_rule,
)


@pytest.mark.parametrize(
    ("version", "use_faiss", "expected"),
    [
        # 5.0-5.6: torch.topk(range_max + max_positives); FAISS search(k=range_max + 1)
        ("5.0.0", False, 20 + 3),
        ("5.6.1", False, 20 + 3),
        ("5.6.1", True, 20 + 1),
        # 5.7-6.2: range_max + max_positives in both branches
        ("5.7.0", False, 20 + 3),
        ("5.7.0", True, 20 + 3),
        ("6.2.0", True, 20 + 3),
        # 6.3 on: one more, for the query's own text (never a candidate)
        ("6.3.0", False, 20 + 3 + 1),
        ("6.3.0", True, 20 + 3 + 1),
        ("6.3.1.dev0", False, 20 + 3 + 1),
        ("6.3rc1", False, 20 + 3 + 1),
        ("7.0.0", False, 20 + 3 + 1),
    ],
)
def test_candidate_count_per_version(version: str, use_faiss: bool, expected: int) -> None:
    assert candidate_count(search_rule(version), 20, 3, use_faiss) == expected


@pytest.mark.parametrize(
    ("version", "excludes_query"), [("5.6.1", False), ("6.2.0", False), ("6.3.0", True)]
)
def test_the_query_itself_is_excluded_from_6_3(version: str, excludes_query: bool) -> None:
    assert search_rule(version).excludes_query is excludes_query


def test_derived_range_max_under_faiss() -> None:
    big = {"range_min": 0, "num_negatives": 300, "relative_margin": 0.05, "use_faiss": True}
    # < 5.7 caps a derived range_max at 2048 whatever the device; later versions only on a GPU.
    assert _derived_range_max(big, 2, search_rule("5.6.1")) == 2048
    capped = 2048 - 3 if _faiss_gpus() > 0 else 300 * 10 + 2
    assert _derived_range_max(big, 2, search_rule("6.3.0")) == capped
    assert _derived_range_max({**big, "range_max": 50}, 2, search_rule("5.6.1")) == 50
