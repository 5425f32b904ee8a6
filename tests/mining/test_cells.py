"""CSV cells neutralised against formula injection, and read back exactly."""

from __future__ import annotations

import pytest

from recallwatch.mining.cells import neutralise, restore


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1-cmd|' /C calc'!A0", "'+1-cmd|' /C calc'!A0"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ann", "ann"),
        ("", ""),
        ("-0.5", "-0.5"),  # a number is no formula
        ("+3e-2", "+3e-2"),
        ("'=x", "''=x"),  # a quote that ``restore`` would take off is quoted itself
        ("''", "'''"),
        ("'plain", "'plain"),
        ("it's", "it's"),
    ],
)
def test_neutralise_and_restore_are_inverse(value: str, cell: str) -> None:
    assert neutralise(value) == cell
    assert restore(cell) == value


def test_non_text_cells_are_written_as_they_are() -> None:
    assert neutralise(-3) == -3 and neutralise(None) is None
