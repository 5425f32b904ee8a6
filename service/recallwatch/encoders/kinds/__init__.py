"""Encoder kinds: one module per form of encoder spec, registered by its name.

Importing this package imports every module in it, so each built-in kind registers itself
(``kinds.base.register``); ``kind_for`` finds a spec's kind. A new kind is a new module here
(see ``kinds.base``).

Built-in kinds: ``st`` (``sentence-transformers``), ``precomputed``, ``python:MODULE:CALLABLE``.
"""

from __future__ import annotations

import importlib
import pkgutil

from recallwatch.encoders.kinds.base import (
    ENCODER_KINDS,
    EncoderKind,
    kind_for,
    open_source,
    register,
    validate_spec,
)

__all__ = [
    "ENCODER_KINDS",
    "EncoderKind",
    "kind_for",
    "open_source",
    "register",
    "validate_spec",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
