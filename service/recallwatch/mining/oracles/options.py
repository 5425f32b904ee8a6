"""What the oracles are told: the options of the kinds that take them, and the judge rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import requests

from recallwatch.mining.margins import relative_threshold

__all__ = ["JudgeRule", "OracleOptions"]


@dataclass(frozen=True)
class JudgeRule:
    """When a judged negative counts as a false negative (either condition suffices)."""

    relative_margin: float | None = 0.05
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.relative_margin is None and self.threshold is None:
            raise ValueError("a judge rule needs a relative margin, a threshold or both")
        if self.relative_margin is not None and not 0.0 <= self.relative_margin < 1.0:
            raise ValueError("relative_margin must be in [0, 1)")

    def false_negative(
        self, score: npt.NDArray[np.float64], positive: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Apply the rule to arrays of negative and positive scores."""
        fn = np.zeros(np.shape(score), dtype=bool)
        if self.relative_margin is not None:
            fn |= score >= relative_threshold(positive, self.relative_margin)
        if self.threshold is not None:
            fn |= score >= self.threshold
        return fn

    def as_dict(self) -> dict[str, float | None]:
        """Return a JSON-friendly dict."""
        return {"relative_margin": self.relative_margin, "threshold": self.threshold}


@dataclass
class OracleOptions:
    """Options of the oracles that need them (ignored by the others)."""

    relevance_level: int = 1
    rule: JudgeRule = field(default_factory=JudgeRule)
    device: str = "cpu"
    batch_size: int = 32
    http_timeout: float = 30.0
    http_retries: int = 3
    http_batch_size: int = 32
    #: Extra request headers of http judges (e.g. ``Authorization``; see
    #: ``resolve_http_headers``). Never shown: only their names are recorded.
    http_headers: dict[str, str] = field(default_factory=dict)
    session: requests.Session | None = None
