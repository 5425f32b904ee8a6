"""Encoder specs: ``open_source`` / ``validate_spec`` refuse unknown or unusable specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from recallwatch.encoders import open_source, validate_spec
from recallwatch.errors import ConfigError


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("faiss", "unknown encoder 'faiss'"),
        ("python:nomodule_xyz:fn", "cannot import module 'nomodule_xyz'"),
        ("python:json:nothing_here", "module 'json' has no attribute 'nothing_here'"),
        ("python:json:__doc__", "is not callable"),
    ],
)
def test_bad_encoder_specs(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(validate_spec(spec), tmp_path)
