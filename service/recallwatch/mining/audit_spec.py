"""The options of a false-negative audit, defined once.

``AuditSpec`` is what ``recallwatch fn-rate`` takes on its command line, what the daemon's
``false_negatives`` section holds (``config.FalseNegativeConfig`` extends it with where the mined
sets and their corpus are, and a timeout) and what the daemon hands the audit's child process. Its
builders (``import_options``, ``oracle_options``, ``audit_config``) turn it into the objects the
audit takes, for all three. A new audit option is one field here plus its use in a builder; the
CLI flag (``CLI_FLAGS`` when it is not the field's name with dashes) and the config key follow.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recallwatch.mining.audit import AuditConfig
from recallwatch.mining.oracles import JudgeRule, OracleOptions, resolve_http_headers
from recallwatch.mining.sampling import RankBuckets
from recallwatch.mining.st_formats import ImportOptions

__all__ = ["CLI_FLAGS", "AuditSpec", "MinedFormat", "cli_flag"]

#: How a mined set is read (``auto``: detected); ``mining.formats.FORMATS`` lists the same.
MinedFormat = Literal[
    "auto",
    "recallwatch",
    "triplet",
    "n-tuple",
    "n-tuple-scores",
    "labeled-pair",
    "labeled-list",
]

#: The ``fn-rate`` flag of each field whose flag is not ``--`` and its name with dashes.
CLI_FLAGS = {
    "oracles": "--oracle",
    "sample_size": "--sample",
    "rank_buckets": "--buckets",
    "control_size": "--control",
    "http_timeout_seconds": "--http-timeout",
}


def cli_flag(field: str) -> str:
    """The ``recallwatch fn-rate`` flag that sets ``field`` of ``AuditSpec``."""
    return CLI_FLAGS.get(field, "--" + field.replace("_", "-"))


class AuditSpec(BaseModel):
    """How to read, judge, sample and estimate: every option of one FN-rate audit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: How an http judge is reached, not what it judges: left out of the audit's identity (the
    #: daemon's config hash), so that changing them re-audits nothing.
    TRANSPORT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "http_auth_env",
            "http_auth_file",
            "http_header_env",
            "http_timeout_seconds",
            "http_retries",
            "http_batch_size",
        }
    )

    format: MinedFormat = "auto"
    #: Exclude (and count) texts that match no corpus document instead of failing.
    allow_unmatched: bool = False
    #: Who judges: one spec, or several for an ensemble where ``agree`` must agree.
    oracles: list[str] = []
    agree: Annotated[int, Field(ge=1)] | None = None
    #: qrels judges: the minimal relevant grade.
    relevance_level: int = 1
    #: Judge models: FN when score(q, neg) >= score(q, pos) - |score(q, pos)| * margin ...
    judge_relative_margin: Annotated[float, Field(ge=0, lt=1)] | None = None
    #: ... or when score(q, neg) >= threshold. Neither given: relative margin 0.05.
    judge_threshold: float | None = None
    device: str = "cpu"
    batch_size: Annotated[int, Field(ge=1)] = 32
    #: Negatives to judge (default 400), or the size for a target interval half-width.
    sample_size: Annotated[int, Field(ge=1)] | None = None
    half_width: Annotated[float, Field(gt=0, lt=1)] | None = None
    sampling: Literal["uniform", "stratified"] = "uniform"
    #: Upper mining rank of each hardness bucket (the last bucket is open).
    rank_buckets: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [
        1,
        3,
        10,
        30,
        100,
    ]
    #: Random negatives judged for the amplification ratio (default: the sample size; 0: none).
    control_size: Annotated[int, Field(ge=0)] | None = None
    seed: int = 0
    #: The acceptable FN rate the recommendation aims under.
    target: Annotated[float, Field(gt=0, lt=1)] = 0.05
    #: HTTP judges: the ``Authorization`` header from an environment variable or a file (only
    #: the variable's name or the file's path is here, never the value).
    http_auth_env: str | None = None
    http_auth_file: Path | None = None
    #: HTTP judges: more headers, each ``NAME=ENVVAR`` (header NAME from variable ENVVAR).
    http_header_env: list[str] = []
    http_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    http_retries: Annotated[int, Field(ge=0)] = 3
    http_batch_size: Annotated[int, Field(ge=1)] = 32

    @field_validator("http_header_env")
    @classmethod
    def _header_env(cls, value: list[str]) -> list[str]:
        for item in value:
            name, sep, var = item.partition("=")
            if not sep or not name.strip() or not var.strip() or any(c in name for c in ": "):
                raise ValueError(f"expected NAME=ENVVAR, got {item!r}")
        return value

    @field_validator("rank_buckets")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError("bucket edges must increase strictly, e.g. [1, 3, 10, 30, 100]")
        return value

    @model_validator(mode="after")
    def _size_once(self) -> AuditSpec:
        if self.sample_size is not None and self.half_width is not None:
            raise ValueError("give sample_size or half_width, not both")
        if self.http_auth_env is not None and self.http_auth_file is not None:
            raise ValueError("give http_auth_env or http_auth_file, not both")
        return self

    @classmethod
    def of(cls, options: AuditSpec) -> AuditSpec:
        """The audit options alone of ``options`` (e.g. of the daemon's config section)."""
        return cls.model_validate(options.model_dump(include=set(cls.model_fields)))

    def import_options(self, **reading: Any) -> ImportOptions:
        """How to read the mined set; ``reading`` adds the per-set options (``rank_offset`` ...)."""
        return ImportOptions(format=self.format, allow_unmatched=self.allow_unmatched, **reading)

    def oracle_options(self) -> OracleOptions:
        """The judges' options, with the http headers resolved from this process' environment.

        Raises ``ValueError`` for a judge rule that cannot be used, ``ConfigError`` for a header
        whose variable or file cannot be read.
        """
        margin = self.judge_relative_margin
        if margin is None and self.judge_threshold is None:
            margin = 0.05
        rule = JudgeRule(relative_margin=margin, threshold=self.judge_threshold)
        return OracleOptions(
            relevance_level=self.relevance_level,
            rule=rule,
            device=self.device,
            batch_size=self.batch_size,
            http_timeout=self.http_timeout_seconds,
            http_retries=self.http_retries,
            http_batch_size=self.http_batch_size,
            http_headers=resolve_http_headers(
                auth_env=self.http_auth_env,
                auth_file=self.http_auth_file,
                header_env=self.http_header_env,
            ),
        )

    def audit_config(self, **decision: Any) -> AuditConfig:
        """How to sample and estimate; ``decision`` adds the options only the CLI sets."""
        return AuditConfig(
            sample_size=self.sample_size,
            half_width=self.half_width,
            sampling=self.sampling,
            buckets=RankBuckets(tuple(self.rank_buckets)),
            control_size=self.control_size,
            seed=self.seed,
            target=self.target,
            **decision,
        )
