"""A user's own model behind a Python entry point ``module:callable``.

The callable is called as ``fn(checkpoint_dir: pathlib.Path, texts: list[str], kind: str)`` with
``kind`` either ``"query"`` or ``"document"`` and returns an array-like of shape
``(len(texts), dim)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import TextKind
from recallwatch.errors import ConfigError

__all__ = ["PythonEncoder", "load_entry_point"]


def load_entry_point(spec: str) -> Callable[..., Any]:
    """Import ``module:callable`` (the callable may be dotted: ``module:Class.method``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError([("encoder", f"expected 'module:callable', got {spec!r}")])
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            [("encoder", f"cannot import module {module_name!r}: {exc}; is it on PYTHONPATH?")]
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(
                [("encoder", f"module {module_name!r} has no attribute {attr!r}")]
            ) from exc
    if not callable(obj):
        raise ConfigError([("encoder", f"{spec!r} is not callable")])
    return obj  # type: ignore[no-any-return]


class PythonEncoder:
    """Call a user entry point to encode texts."""

    def __init__(self, spec: str, checkpoint: Path | str) -> None:
        self.spec = spec
        self.name = f"python:{spec}"
        self.checkpoint = Path(checkpoint)
        self.fn = load_entry_point(spec)

    def encode(self, texts: Sequence[str], kind: TextKind) -> npt.NDArray[np.float32]:
        """Call the entry point; validation of its output happens in the embedding source."""
        return np.asarray(self.fn(self.checkpoint, list(texts), kind))
