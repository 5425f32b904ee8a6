"""What an oracle is: it judges (query, document) pairs as relevant, not relevant or unsure.

A mined negative judged *relevant* is a false negative. Oracles may be selective (audit qrels
judge only audited queries, review labels only labelled pairs): ``eligible`` says which pairs they
can judge, and only those are sampled. Every estimate records the oracle's ``OracleInfo``.

**Oracle kinds.** An oracle spec (``fn-rate --oracle``, ``false_negatives.oracles``) is
``PREFIX:ARGUMENT`` or a URL; each form is an ``OracleKind`` subclass registered with
``@register``, and ``kind_of`` finds a spec's kind (no if-chain): ``open_oracle`` opens it, the
config resolves the argument of a kind that ``takes_path`` relative to the config file. **Adding
a kind** is one new module in ``mining/oracles/`` (modules of that package are imported when it
is) with a registered ``OracleKind`` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from recallwatch.errors import ConfigError, RecallwatchError
from recallwatch.mining.oracles.options import OracleOptions
from recallwatch.mining.oracles.redaction import redact_url

__all__ = [
    "FILE_FREE_LABELS",
    "LABELS",
    "MODEL_FREE_LABELS",
    "ORACLE_KINDS",
    "JudgeError",
    "Judgement",
    "Label",
    "Oracle",
    "OracleInfo",
    "OracleKind",
    "Pair",
    "kind_of",
    "open_oracle",
    "register",
]

Label = Literal["relevant", "not_relevant", "unsure"]
LABELS: tuple[Label, ...] = ("relevant", "not_relevant", "unsure")


class JudgeError(RecallwatchError):
    """A judge (model, endpoint) that could not produce judgements."""

    reason = "judge_failed"


@dataclass(frozen=True)
class Pair:
    """A (query, document) pair to judge, with the query's labelled positives for context."""

    query_id: str
    doc_id: str
    query_text: str | None = None
    doc_text: str | None = None
    positive_ids: tuple[str, ...] = ()
    positive_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """An oracle's verdict on one pair; ``label`` None means the oracle has no judgement for it."""

    label: Label | None
    #: The judge's score of (query, document), when it has one.
    score: float | None = None
    #: The judge's score of the query's (lowest-scoring) positive, when it has one.
    positive_score: float | None = None
    #: Per-judge labels of an ensemble, in judge order.
    votes: tuple[Label | None, ...] = ()


@dataclass(frozen=True)
class OracleInfo:
    """Which oracle judged an estimate, recorded with it."""

    kind: str
    #: The spec it was opened from, e.g. ``qrels:audit.tsv`` or ``model:/models/judge``.
    spec: str
    #: True when the judge is the checkpoint under evaluation itself: a label-free proxy.
    proxy: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    members: tuple[OracleInfo, ...] = ()
    #: Labels this judge gives at no cost (files: any number; a local model: its compute
    #: budget); 0 when every label costs (people, a paid endpoint). The audit sizes a free
    #: judge's sample up to this, a census where it reaches (``mining.sizing``).
    free_labels: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        out: dict[str, Any] = {"kind": self.kind, "spec": self.spec, "proxy": self.proxy}
        if self.free_labels:
            out["free_labels"] = self.free_labels
        if self.details:
            out["details"] = dict(self.details)
        if self.members:
            out["members"] = [m.as_dict() for m in self.members]
        return out


@runtime_checkable
class Oracle(Protocol):
    """Judge pairs; say which pairs can be judged at all."""

    info: OracleInfo
    #: Whether ``judge`` needs query and document texts in the pairs.
    needs_text: bool
    #: Whether eligibility depends on the query alone (audit qrels) rather than on the pair
    #: (review labels); the control sample is then drawn from eligible queries only.
    judges_whole_queries: bool

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """Mask of the pairs this oracle can judge; None when it can judge every pair."""
        ...

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Return one judgement per pair, in order."""
        ...


#: Labels a file judge (qrels, a labels file) gives for free: a census of any mined set.
FILE_FREE_LABELS = 1_000_000
#: Labels a local judge model gives for free: what it scores in a few minutes on a CPU.
MODEL_FREE_LABELS = 5_000

KindT = TypeVar("KindT", bound="type[OracleKind]")


class OracleKind(ABC):
    """One form of oracle spec: subclass, set ``prefixes`` and ``usages``, override ``open``."""

    #: The spec prefixes of this kind (``qrels`` for ``qrels:PATH``).
    prefixes: ClassVar[tuple[str, ...]]
    #: How its specs are written where the kinds are listed (``qrels:PATH``).
    usages: ClassVar[tuple[str, ...]]
    #: Its place where the kinds are listed (error messages): lower first.
    listed: ClassVar[int] = 100
    #: Whether the argument is a path (the config resolves it relative to the config file).
    takes_path: ClassVar[bool] = False

    @classmethod
    def argument(cls, spec: str) -> str | None:
        """The argument of ``spec`` if it is of this kind (``PREFIX:ARGUMENT``), else None."""
        prefix, sep, argument = spec.partition(":")
        return argument if sep and argument and prefix in cls.prefixes else None

    @abstractmethod
    def open(self, spec: str, argument: str, options: OracleOptions) -> Oracle:
        """Open the oracle of ``spec`` (``argument``: its part after the prefix)."""


#: Oracle kinds by their first prefix, registered in import order.
ORACLE_KINDS: dict[str, type[OracleKind]] = {}


def register(cls: KindT) -> KindT:
    """Class decorator: register an oracle kind under its prefixes."""
    for other in ORACLE_KINDS.values():
        taken = set(other.prefixes) & set(cls.prefixes)
        if other is not cls and taken:
            raise ValueError(f"oracle prefix {sorted(taken)[0]!r} is already registered")
    ORACLE_KINDS[cls.prefixes[0]] = cls
    return cls


def kind_of(spec: str) -> tuple[type[OracleKind], str]:
    """The kind of an oracle spec and its argument, or ``ConfigError`` listing the forms."""
    listed = sorted(ORACLE_KINDS.values(), key=lambda k: (k.listed, k.prefixes))
    for kind in listed:
        argument = kind.argument(spec)
        if argument is not None:
            return kind, argument
    # Shown without credentials: the spec may be a judge URL that carries them.
    usages = [u for k in listed for u in k.usages]
    forms = f"{', '.join(usages[:-1])} or {usages[-1]}" if len(usages) > 1 else usages[0]
    raise ConfigError([("oracle", f"unknown oracle {redact_url(spec)!r}; use {forms}")])


def open_oracle(spec: str, options: OracleOptions | None = None) -> Oracle:
    """Open one oracle from its spec (see the package docstring for the forms)."""
    kind, argument = kind_of(spec)
    return kind().open(spec, argument, options or OracleOptions())
