"""Evaluation backends: one module per ``evaluation.backend`` value, registered by its name.

Importing this package imports every module in it, so each built-in backend registers itself
(``backends.base.register``); ``backend_for`` finds one by name. A new backend is a new module
here (see ``backends.base``).

Built-in backends: ``local`` (this process), ``ray`` (a Ray cluster; Ray imported only then).
"""

from __future__ import annotations

import importlib
import pkgutil

from recallwatch.evaluation.backends.base import (
    BACKENDS,
    EvaluatedHeldout,
    EvaluationBackend,
    EvaluationRequest,
    backend_for,
    register,
)

__all__ = [
    "BACKENDS",
    "EvaluatedHeldout",
    "EvaluationBackend",
    "EvaluationRequest",
    "backend_for",
    "register",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
