"""The ``review`` oracle: the labels people give on the daemon's ``/review`` pages.

``review`` (no argument) in ``false_negatives.oracles`` tells the daemon to estimate each mined
set from its reviewed labels as they arrive (``daemon.review_feed``): no path to write, no
fingerprint to look up, and a set already audited picks up labels added later. Beside other
judges (``[review, "model:DIR"]``) those judges audit the set first (labelling the whole seeded
sample); people's labels of part of it then correct theirs: the daemon's estimate is the
prediction-powered one (``daemon.review_ppi``, source ``ppi``). The labels live in the daemon's
store, so the spec cannot be opened outside it: ``recallwatch fn-rate`` reads an export with
``labels:FILE`` instead.
"""

from __future__ import annotations

from recallwatch.errors import ConfigError
from recallwatch.mining.oracles.base import Oracle, OracleKind, register
from recallwatch.mining.oracles.options import OracleOptions

__all__ = ["REVIEW_SPEC", "ReviewJudge", "judges_besides_review"]

#: The spec that names the review labels.
REVIEW_SPEC = "review"


def judges_besides_review(specs: list[str]) -> list[str]:
    """The oracle specs other than ``review``: what the audit's child process opens."""
    return [s for s in specs if s != REVIEW_SPEC]


@register
class ReviewJudge(OracleKind):
    """``review``: the daemon's reviewed labels of the mined set (``/review``)."""

    prefixes = (REVIEW_SPEC,)
    usages = (REVIEW_SPEC,)
    listed = 25

    @classmethod
    def argument(cls, spec: str) -> str | None:
        """The bare word ``review`` (it takes no argument)."""
        return "" if spec.strip() == REVIEW_SPEC else None

    def open(self, spec: str, argument: str, options: OracleOptions) -> Oracle:
        """Not openable: the labels are in the daemon's store, read by ``daemon.review_feed``."""
        raise ConfigError(
            [
                (
                    "oracle",
                    "'review' is the daemon's reviewed labels (false_negatives.oracles of serve); "
                    "outside the daemon use labels:FILE with an export of /review/KEY/labels.csv",
                )
            ]
        )
