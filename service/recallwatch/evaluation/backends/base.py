"""What an evaluation backend is: a plugin for one ``evaluation.backend`` value, and their registry.

A backend evaluates one checkpoint on one held-out set (an ``EvaluationRequest``) where it runs
its work: ``local`` in this process, ``ray`` on a Ray cluster. It is an ``EvaluationBackend``
subclass registered under its ``name`` with ``@register``; ``backend_for`` finds it (no
``== "ray"`` checks). Its options are plain data (``Mapping``): the daemon hands its child the
backend's section of the config (``evaluation.<name>``, with ``kind``); ``recallwatch eval``
builds them from its ``--<name>-...`` flags (``commands.eval``).

**Adding a backend** is one new module in ``evaluation/backends/`` (a registered
``EvaluationBackend`` subclass; modules of that package are imported when it is; import an
optional dependency inside ``evaluate``) plus its name in the config's ``evaluation.backend``
(and its options section there, and its flags in ``commands/eval.py``, if it has options).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from recallwatch.encoders import EncoderOptions
from recallwatch.errors import ConfigError
from recallwatch.evaluation.metrics import DEFAULT_KS
from recallwatch.evaluation.pipeline import Evaluation, Progress
from recallwatch.evaluation.search import Similarity

__all__ = [
    "BACKENDS",
    "EvaluatedHeldout",
    "EvaluationBackend",
    "EvaluationRequest",
    "backend_for",
    "register",
]

BackendT = TypeVar("BackendT", bound="type[EvaluationBackend]")


class EvaluatedHeldout(Protocol):
    """What a backend returns of the held-out set: enough for per-query outcomes."""

    @property
    def doc_position(self) -> Mapping[str, int]: ...
    @property
    def query_ids(self) -> list[str]: ...
    def relevant(self, query_id: str) -> dict[str, int]:
        """The query's relevant documents and their grades."""
        ...


@dataclass(frozen=True)
class EvaluationRequest:
    """One checkpoint on one held-out set, with the encoder and the search's settings."""

    heldout: Path | str
    split: str
    relevance_level: int
    #: The encoder spec (``encoders.kinds``) and its options.
    spec: str
    checkpoint: Path | str
    encoder_options: EncoderOptions
    ks: Sequence[int] = DEFAULT_KS
    similarity: Similarity = "cosine"
    shard_rows: int | None = None
    progress: Progress | None = None
    #: Where to say what was loaded (the CLI's log); None: say nothing.
    log: logging.Logger | None = None


class EvaluationBackend(ABC):
    """One backend: subclass, set ``name``, override ``evaluate``, register."""

    #: The ``evaluation.backend`` / ``--backend`` value (the registry key).
    name: ClassVar[str]
    #: The module the backend needs installed, and the hint that installs it; None: none.
    requires: ClassVar[tuple[str, str] | None] = None

    @abstractmethod
    def evaluate(
        self, request: EvaluationRequest, options: Mapping[str, Any]
    ) -> tuple[Evaluation, EvaluatedHeldout]:
        """Evaluate; the ``Evaluation`` and the held-out set as the backend read it."""


#: Backends by ``name``.
BACKENDS: dict[str, type[EvaluationBackend]] = {}


def register(cls: BackendT) -> BackendT:
    """Class decorator: register a backend under its ``name``."""
    existing = BACKENDS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"backend {cls.name!r} is already registered by {existing.__name__}")
    BACKENDS[cls.name] = cls
    return cls


def backend_for(name: str) -> EvaluationBackend:
    """The backend called ``name``."""
    cls = BACKENDS.get(name)
    if cls is None:
        raise ConfigError(
            [
                (
                    "evaluation.backend",
                    f"no backend {name!r} is registered (known: {', '.join(sorted(BACKENDS))})",
                )
            ]
        )
    return cls()
