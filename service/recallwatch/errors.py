"""The exception tree of recallwatch.

RecallwatchError
 +-- InputError(ValueError)        bad input data: a file, a line, a field
 |    +-- HeldoutError             a held-out set (BEIR layout) that cannot be used
 |    +-- EmbeddingError           precomputed or encoder output with a bad shape, dtype, NaN ...
 +-- ConfigError(ValueError)       a configuration value, named by its dotted path
 +-- CheckpointError               a checkpoint that cannot be loaded (corrupt, incomplete)
 +-- EncoderError                  an encoder that failed while running
 +-- EvaluationError               an evaluation or FN audit that failed in its child process
                                   (any of the above arrives as one, with its reason)

Every message says where (file and line, or field) and what to do about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = [
    "AuditFailureReason",
    "CheckpointError",
    "ConfigError",
    "EmbeddingError",
    "EncoderError",
    "EvaluationError",
    "EvaluationFailureReason",
    "HeldoutError",
    "InputError",
    "RecallwatchError",
]

#: Why an evaluation fails, the one list: the ``reason`` of each error an evaluation can raise
#: (below, the Ray backend's ``ClusterUnavailableError``) and the daemon's own (``timeout``,
#: ``crashed``, ``internal``, and ``store_unavailable``: its outcome could not be stored, e.g. a
#: full disk). ``recallwatch_evaluation_failures_total`` starts every run at 0 for each, so that a
#: first failure is an increase; a reason outside it is recorded all the same.
EvaluationFailureReason = Literal[
    "bad_checkpoint",
    "bad_config",
    "bad_embeddings",
    "bad_heldout",
    "bad_input",
    "cluster_unavailable",
    "crashed",
    "encoder_failed",
    "error",
    "internal",
    "store_unavailable",
    "timeout",
]

#: Why a false-negative audit fails, the one list: the judge's (``JudgeError``, and the runner's
#: ``not_judged`` when it judged nothing), the mined set's and config's errors, and the runner's
#: own; ``recallwatch_false_negative_audit_failures_total`` starts at 0 for each.
AuditFailureReason = Literal[
    "bad_config",
    "bad_input",
    "crashed",
    "error",
    "internal",
    "judge_failed",
    "not_judged",
    "timeout",
]


class RecallwatchError(Exception):
    """Root of every error recallwatch raises on purpose."""

    #: A short, bounded machine-readable reason (used as a metric label).
    reason: str = "error"


def _where(path: Path | str | None, line: int | None, field: str | None) -> str:
    parts: list[str] = []
    if path is not None:
        parts.append(str(path))
    if line is not None:
        parts.append(f"line {line}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts)


class InputError(RecallwatchError, ValueError):
    """Input data that cannot be used, located by file, line and field."""

    reason = "bad_input"

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.field = field
        self.detail = message
        where = _where(path, line, field)
        super().__init__(f"{where}: {message}" if where else message)


class HeldoutError(InputError):
    """A held-out set (BEIR layout) that cannot be used."""

    reason = "bad_heldout"


class EmbeddingError(InputError):
    """Embeddings with a bad shape, dtype, alignment or non-finite values."""

    reason = "bad_embeddings"


class ConfigError(RecallwatchError, ValueError):
    """A configuration error; ``errors`` holds (dotted field path, message) pairs."""

    reason = "bad_config"

    def __init__(self, errors: list[tuple[str, str]], *, source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        head = f"invalid configuration in {source}" if source else "invalid configuration"
        lines = [f"{head}:"] + [f"  {loc}: {msg}" if loc else f"  {msg}" for loc, msg in errors]
        super().__init__("\n".join(lines))


class CheckpointError(RecallwatchError):
    """A checkpoint that cannot be loaded: missing, incomplete or corrupt files."""

    reason = "bad_checkpoint"

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class EncoderError(RecallwatchError):
    """An encoder that failed while producing embeddings."""

    reason = "encoder_failed"


class EvaluationError(RecallwatchError):
    """An evaluation or FN audit that failed: a bounded ``reason`` (a metric label), a ``message``.

    The daemon's runner raises it for whatever stopped the child process: a ``RecallwatchError``
    raised there (with that error's ``reason``), a timeout, a crash, an unexpected exception.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
