"""The model of ``recallwatch.yaml``: what the daemon watches, how it evaluates, where it stores.

Loading validates everything at once and raises one ``ConfigError`` listing each problem by its
dotted field path (``runs.0.settle_seconds: ...``). Relative paths are relative to the config
file. Secrets (webhook URLs, signing secrets, tokens) are never written in the file: they come from
``<name>_env`` (an environment variable) or ``<name>_file`` (a file's content, stripped) and are
held as ``SecretStr``, so neither their values nor repr() of the config can leak them.

See ``examples/recallwatch.yaml`` for an annotated example and ``docs/daemon.md`` for the reference.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recallwatch.encoders import EncoderOptions, validate_spec
from recallwatch.errors import ConfigError
from recallwatch.evaluation.metrics import DEFAULT_KS
from recallwatch.mining.audit_spec import AuditSpec
from recallwatch.mining.oracles import kind_of

__all__ = [
    "DEFAULT_MAX_PAIRS",
    "Config",
    "EarlyConfig",
    "EncoderConfig",
    "FalseNegativeConfig",
    "HeldoutConfig",
    "HolesConfig",
    "RunConfig",
    "load_config",
    "missing_secrets",
    "parse_config",
]

DEFAULT_PORT = 9464

#: Values of the bounded ``run`` and ``dataset`` metric labels.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")]
PositiveSeconds = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


#: A path; relative ones are relative to the config file's directory.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class StoreConfig(_Model):
    """Where the SQLite store lives."""

    path: ConfigPath = Field(default=Path("recallwatch.db"), validate_default=True)


class HttpConfig(_Model):
    """The HTTP listen address, ``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0 picks a free one)."""

    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    #: An optional read token for the web pages (``/runs`` ...) and the JSON API (``/api/v1``),
    #: a secret: from an environment variable or a file. Unset: both are open (see docs/web.md).
    web_token_env: str | None = None
    web_token_file: ConfigPath | None = None
    #: An optional bearer token for ``/metrics`` (Prometheus' ``authorization`` scrape setting).
    metrics_token_env: str | None = None
    metrics_token_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _check_tokens(self, info: ValidationInfo) -> HttpConfig:
        for name in ("web_token", "metrics_token"):
            if (
                getattr(self, f"{name}_env") is not None
                and getattr(self, f"{name}_file") is not None
            ):
                raise ValueError(f"set {name}_env or {name}_file, not both")
        if _resolving(info):
            self.web_token()
            self.metrics_token()
        return self

    def _token(self, name: str) -> str | None:
        env, file = getattr(self, f"{name}_env"), getattr(self, f"{name}_file")
        if env is not None:
            return _read_secret("env", env)
        if file is not None:
            return _read_secret("file", str(file))
        return None

    def web_token(self) -> str | None:
        """The read token of the pages and the API, or None when they are open."""
        return self._token("web_token")

    def metrics_token(self) -> str | None:
        """The bearer token of ``/metrics``, or None when it is open."""
        return self._token("metrics_token")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        """The host part of ``listen``."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return split_listen(self.listen)[1]


def split_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``[V6]:PORT``) and check the port."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if match is None:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:{DEFAULT_PORT}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return host, port


class EncoderConfig(EncoderOptions):
    """How checkpoints are turned into embeddings; ``encoder: st`` is short for ``{spec: st}``.

    Its options are ``encoders.options.EncoderOptions``' (those of ``recallwatch eval``); this
    section adds the encoder ``spec``.
    """

    spec: str = "st"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"spec": data} if isinstance(data, str) else data

    @field_validator("spec")
    @classmethod
    def _check_spec(cls, value: str) -> str:
        try:
            return validate_spec(value)
        except ConfigError as exc:
            raise ValueError(exc.errors[0][1]) from None

    def options(self) -> EncoderOptions:
        """The options the encoders package takes."""
        return EncoderOptions.of(self)


class HeldoutConfig(_Model):
    """A clean held-out set (BEIR layout); ``name`` is the ``dataset`` metric label."""

    name: Name | None = None
    path: ConfigPath
    split: str = "test"
    relevance_level: int = 1

    @property
    def dataset(self) -> str:
        """The dataset label: ``name``, or the directory's name."""
        return self.name or re.sub(r"[^A-Za-z0-9_.:-]", "_", self.path.name)[:63] or "heldout"


class RayConfig(_Model):
    """``evaluation.ray``: the corpus in shards, one Ray task each (``backend: ray``; scale.md).

    Workers open the checkpoint and the held-out set at the same paths as the daemon: a shared
    filesystem mounted at the same place on every node.
    """

    #: Unset: a Ray started on this machine per evaluation. ``auto``, ``ray://HOST:PORT`` (Ray
    #: Client, a KubeRay head's port 10001) or ``HOST:PORT`` (the head's GCS, in-cluster).
    address: str | None = None
    shards: Annotated[int, Field(ge=1, le=100_000)] = 8
    #: Resources of each task (the query encoding and each shard).
    num_cpus: Annotated[float, Field(ge=0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0)] = 0.0
    #: Ray's retries of a task whose worker died.
    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    #: Bound on reaching the cluster; past it the evaluation fails as ``cluster_unavailable``.
    connect_timeout_seconds: PositiveSeconds = 10.0
    #: Ray's runtime environment for the workers (``env_vars``, ``pip``, ``working_dir`` ...).
    runtime_env: dict[str, Any] = Field(default_factory=dict)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        from recallwatch.evaluation.distributed.cluster import check_address

        if value is not None:
            check_address(value)
        return value

    def options(self) -> dict[str, Any]:
        """Plain data for ``evaluation.distributed.RayOptions.from_json``."""
        return {"kind": "ray", **self.model_dump(mode="json")}


class EarlyConfig(_Model):
    """The early pass (docs/alerting.md, "Early warning"): before a checkpoint's exact
    evaluation, evaluate it on a pool (every judged document, the previous exact evaluation's top
    candidates from its stored rankings, a seeded random fill) whose recall bounds the exact
    recall from above, and warn when it falls significantly below the previous checkpoint's exact
    recall."""

    enabled: bool = True
    #: Off for corpora smaller than this (the previous exact evaluation's document count): there
    #: the exact pass is quick and the pool would be most of the corpus.
    min_corpus_docs: Annotated[int, Field(ge=0)] = 100_000
    #: The pool's size as a fraction of the corpus, at most ``max_pool_docs`` (never fewer than
    #: the judged documents).
    pool_fraction: Annotated[float, Field(gt=0, le=1)] = 0.02
    max_pool_docs: Annotated[int, Field(ge=1)] = 50_000
    #: Top documents per query that the pool takes (round-robin over queries, judged ones left
    #: out) from the rankings stored with the previous exact evaluation (``stored_rankings``);
    #: rankings stored shallower give what they hold, none (``stored_rankings: 0``) give none:
    #: the pool is then the judged documents and the random fill.
    candidates_per_query: Annotated[int, Field(ge=0)] = 20
    metric: Literal["recall"] = "recall"
    #: The cutoff compared; unset: 10, or the largest of ``evaluation.ks`` when that is smaller.
    k: Annotated[int, Field(ge=1)] | None = None
    #: One-sided paired sign-flip test (``stats.paired``) at this level, and an effect floor.
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    min_drop: Annotated[float, Field(ge=0)] = 0.01
    seed: int = 0


class EvaluationConfig(_Model):
    """What every checkpoint is evaluated with, and how the evaluation queue behaves."""

    encoder: EncoderConfig = EncoderConfig()
    #: ``local``: in the daemon's child process. ``ray``: on a Ray cluster (``ray`` section).
    backend: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()
    ks: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = list(DEFAULT_KS)
    similarity: Literal["cosine", "dot", "l2"] = "cosine"
    shard_rows: Annotated[int, Field(ge=1)] = 65_536
    #: Document ids kept per query of each evaluation (its top-K, capped at the largest k), so
    #: that the history can be re-scored under another qrels version and audited for holes
    #: (docs/holes.md), and so that the early pass' pool takes its candidates from them
    #: (``early.candidates_per_query``). 0 keeps none. Not part of the evaluation key: changing
    #: it re-evaluates nothing.
    stored_rankings: Annotated[int, Field(ge=0, le=1000)] = 20
    concurrency: Annotated[int, Field(ge=1, le=64)] = 1
    timeout_seconds: PositiveSeconds = 6 * 3600.0
    policy: Literal["oldest_first", "latest_only"] = "oldest_first"
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 30.0
    #: Fork each evaluation's (and audit's) child from a warm parent that imported numpy, faiss,
    #: torch and sentence-transformers once (``daemon.zygote``), instead of starting a fresh
    #: interpreter per evaluation. Not part of the evaluation key.
    warm_child: bool = True
    early: EarlyConfig = EarlyConfig()

    @field_validator("ks")
    @classmethod
    def _sorted_ks(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _early_k_is_evaluated(self) -> EvaluationConfig:
        # The early pass compares with stored outcomes, ranked within the top max(ks) only.
        if self.early.enabled and self.early.k is not None and self.early.k > max(self.ks):
            raise ValueError(
                f"early.k ({self.early.k}) must be at most the largest of ks ({max(self.ks)})"
            )
        return self


class RunConfig(_Model):
    """A training run: a directory where checkpoints appear."""

    name: Name
    directory: ConfigPath
    checkpoint_glob: str = "checkpoint-*"
    ready_marker: str = "trainer_state.json"
    settle_seconds: Annotated[float, Field(ge=0)] = 30.0
    mining_metadata: str = "mining.json"
    #: Overrides ``evaluation.encoder`` for this run.
    encoder: EncoderConfig | None = None

    @field_validator("checkpoint_glob", "ready_marker", "mining_metadata")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("must be a non-empty path relative to the run/checkpoint directory")
        return value


def _oracle_spec(value: str, info: ValidationInfo) -> str:
    """An oracle spec (``mining.oracles``' kinds), its path relative to the config file."""
    try:
        kind, argument = kind_of(value)
    except ConfigError as exc:
        raise ValueError(exc.errors[0][1]) from None
    if not kind.takes_path:
        return value
    return f"{value.partition(':')[0]}:{_resolve_path(Path(argument), info)}"


class FalseNegativeConfig(AuditSpec):
    """The FN-rate audit of each new mined set (present = enabled).

    Its audit options are ``mining.audit_spec.AuditSpec``'s (those of ``recallwatch fn-rate``);
    this section adds where the mined sets and their corpus are, and the audit's timeout.
    """

    #: Key of the mining metadata naming the mined set (a path relative to the run directory).
    mined_set_key: str = "mined_set"
    #: The BEIR directory (corpus.jsonl, queries.jsonl) the mined sets' ids and texts refer to.
    corpus: ConfigPath
    #: Who judges: one spec, or several for an ensemble where ``agree`` must agree.
    oracles: Annotated[list[Annotated[str, AfterValidator(_oracle_spec)]], Field(min_length=1)]
    timeout_seconds: PositiveSeconds = 3600.0
    #: The audit's child process reads the header value again from this file.
    http_auth_file: ConfigPath | None = None

    @field_validator("http_auth_env")
    @classmethod
    def _auth_env_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _resolving(info):
            _read_secret("env", value)  # checked now, read again by the audit process
        return value

    @field_validator("http_auth_file")
    @classmethod
    def _auth_file_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and _resolving(info):
            _read_secret("file", str(value))
        return value

    @field_validator("http_header_env")
    @classmethod
    def _header_env_set(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for item in value if _resolving(info) else []:
            _read_secret("env", item.partition("=")[2].strip())
        return value


#: Displacing (query, document) pairs a hole audit judges at most (``holes.max_pairs``).
DEFAULT_MAX_PAIRS = 200


class HolesConfig(_Model):
    """``holes``: audit a regression alert for holes in the held-out set (docs/holes.md).

    When a regression alert opens, the unjudged documents the checkpoint ranked above the
    positives it lost are pooled (at most ``max_pairs``, seeded), judged by ``oracles`` in the
    daemon's process (labels files, HTTP judges; a model judge loads its model there), and the
    alert's evidence gives the hole-adjusted drop beside the raw one.
    """

    oracles: Annotated[list[Annotated[str, AfterValidator(_oracle_spec)]], Field(min_length=1)]
    max_pairs: Annotated[int, Field(ge=1, le=100_000)] = DEFAULT_MAX_PAIRS
    seed: int = 0


# -- notifications: modelled and validated here, delivered by the alerting code -------------------


def _resolving(info: ValidationInfo) -> bool:
    """Whether this load resolves secrets (``parse_config(..., secrets=False)`` does not)."""
    return bool((info.context or {}).get("secrets", True))


def _read_secret(kind: str, ref: str) -> str:
    if kind == "env":
        value = os.environ.get(ref, "")
        if not value.strip():
            raise ValueError(f"environment variable {ref} is not set or empty")
        return value.strip()
    try:
        value = Path(ref).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {ref}: {exc.strerror or exc}") from None
    if not value:
        raise ValueError(f"secret file {ref} is empty")
    return value


class _Channel(_Model):
    """Fields shared by notification channels; secrets are resolved at load time."""

    name: Name
    timeout_seconds: PositiveSeconds = 10.0
    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)
    #: (secret name, required) pairs; each is configured as ``<name>_env`` or ``<name>_file``.
    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = ()

    @field_validator("*", mode="after")
    @classmethod
    def _check_secret_ref(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if value is not None and name.endswith("_file"):
            # Relative to the config file's directory, like every other path of the config.
            value = str(_resolve_path(Path(str(value)), info))
        if not _resolving(info):
            return value
        if value is not None and (name.endswith("_env") or name.endswith("_file")):
            _read_secret("env" if name.endswith("_env") else "file", str(value))
        return value

    @model_validator(mode="after")
    def _resolve_secrets(self, info: ValidationInfo) -> _Channel:
        for name, required in self.secret_fields:
            env, file = getattr(self, f"{name}_env"), getattr(self, f"{name}_file")
            if env is not None and file is not None:
                raise ValueError(f"set {name}_env or {name}_file, not both")
            if env is None and file is None:
                if required:
                    raise ValueError(f"{name} is required: set {name}_env or {name}_file")
                continue
        if _resolving(info):
            self.resolve_secrets()
        return self

    def resolve_secrets(self) -> None:
        """Read this channel's secrets (``ValueError`` naming the variable or file if unset)."""
        for name, _ in self.secret_fields:
            env, file = getattr(self, f"{name}_env"), getattr(self, f"{name}_file")
            if env is not None or file is not None:
                kind, ref = ("env", env) if env is not None else ("file", file)
                self._secrets[name] = SecretStr(_read_secret(kind, ref))

    def secret(self, name: str) -> SecretStr | None:
        """The resolved secret ``name`` (``None`` when optional and not configured)."""
        return self._secrets.get(name)


class SlackChannel(_Channel):
    """A Slack incoming webhook; the URL is a secret."""

    type: Literal["slack"]
    webhook_url_env: str | None = None
    webhook_url_file: str | None = None
    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = (("webhook_url", True),)


class WebhookChannel(_Channel):
    """A generic JSON webhook signed per Standard Webhooks with ``secret``."""

    type: Literal["webhook"]
    url_env: str | None = None
    url_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = (("url", True), ("secret", False))

    def resolve_secrets(self) -> None:
        """Read the URL and signing secret, and check the secret's format."""
        super().resolve_secrets()
        # The Standard Webhooks key convention, which ``notify.webhook.secret_key`` decodes when
        # signing: checked here so a bad secret fails at load, not at the first delivery. The
        # messages name the convention, never the value.
        secret = self.secret("secret")
        if secret is not None:
            try:
                key = base64.b64decode(
                    secret.get_secret_value().removeprefix("whsec_"), validate=True
                )
            except (binascii.Error, ValueError):
                raise ValueError(
                    "the signing secret must be base64 (optionally prefixed with whsec_)"
                ) from None
            if not key:
                raise ValueError("the signing secret is empty")


class AlertmanagerChannel(_Channel):
    """An Alertmanager (``POST /api/v2/alerts``); the URL is not secret, a bearer token is."""

    type: Literal["alertmanager"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    #: While an alert fires it is re-sent this often, with ``endsAt`` 4 intervals ahead.
    resend_interval_seconds: PositiveSeconds = 60.0
    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = (("bearer_token", False),)


Channel = Annotated[
    SlackChannel | WebhookChannel | AlertmanagerChannel, Field(discriminator="type")
]


class _Rule(_Model):
    name: Name
    channels: Annotated[list[str], Field(min_length=1)]
    #: Runs the rule applies to (empty: all).
    runs: list[str] = Field(default_factory=list)
    severity: Literal["info", "warning", "critical"] = "warning"


class RecallRegressionRule(_Rule):
    """A significant drop of a metric at k against a baseline checkpoint."""

    type: Literal["recall_regression"]
    metric: Literal["recall", "success", "mrr", "ndcg"] = "recall"
    ks: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [10]
    min_drop: Annotated[float, Field(ge=0, le=1)] = 0.01
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    confirm: Annotated[int, Field(ge=1)] = 1
    #: previous_mining: after a mining change; same_mining: against the best under the same config.
    compare_with: Literal["previous_mining", "same_mining"] = "previous_mining"
    baseline: Literal["best", "last"] = "best"
    baseline_checkpoint: str | None = None
    permutations: Annotated[int, Field(ge=100)] = 10_000
    seed: int = 0
    #: An open alert resolves when p rises above this (or the drop falls below min_drop / 2).
    resolve_alpha: Annotated[float, Field(gt=0, lt=1)] = 0.2
    #: Prior SD of the metric between checkpoints of one mining config (0.01 = 1 point), and how
    #: many degrees of freedom it is worth beside the run's own same-mining checkpoints.
    checkpoint_sd: Annotated[float, Field(ge=0, le=1)] = 0.01
    checkpoint_sd_weight: Annotated[float, Field(gt=0)] = 4.0
    #: Also pool the checkpoint variance of other runs evaluated on the same held-out set (same
    #: evaluation key and precision): each mining segment of theirs adds its J - 1 degrees of
    #: freedom; the most recent ``checkpoint_sd_history_runs`` such runs count.
    checkpoint_sd_history: bool = True
    checkpoint_sd_history_runs: Annotated[int, Field(ge=1, le=1000)] = 20

    @model_validator(mode="after")
    def _reachable_alpha(self) -> RecallRegressionRule:
        """Reject an ``alpha`` the test cannot reach, and a ``resolve_alpha`` below ``alpha``."""
        floor = 1.0 / (self.permutations + 1)
        if self.alpha < floor:
            raise ValueError(
                f"alpha {self.alpha:g} can never fire: with {self.permutations} permutations the "
                f"smallest p-value is {floor:.3g}; raise permutations to at least "
                f"{math.ceil(1.0 / self.alpha)} (or raise alpha)"
            )
        if self.resolve_alpha < self.alpha:
            raise ValueError(
                f"resolve_alpha {self.resolve_alpha:g} must be at least alpha {self.alpha:g}"
            )
        return self


class FalseNegativeRateRule(_Rule):
    """The lower bound of the FN-rate interval above ``threshold``."""

    type: Literal["false_negative_rate"]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.05


class AmplificationRule(_Rule):
    """Label-noise amplification (mined ÷ random FN rate) above ``threshold``."""

    type: Literal["label_noise_amplification"]
    threshold: Annotated[float, Field(gt=0)] = 3.0


class RecallFloorRule(_Rule):
    """A metric at k below an absolute floor."""

    type: Literal["recall_floor"]
    metric: Literal["recall", "success", "mrr", "ndcg"] = "recall"
    k: Annotated[int, Field(ge=1)] = 10
    floor: Annotated[float, Field(ge=0, le=1)]


class EvaluationFailingRule(_Rule):
    """``consecutive`` failed evaluations in a row."""

    type: Literal["evaluation_failing"]
    consecutive: Annotated[int, Field(ge=1)] = 3


class NoRecentEvaluationRule(_Rule):
    """No newly evaluated checkpoint for ``after_seconds``."""

    type: Literal["no_recent_evaluation"]
    after_seconds: PositiveSeconds = 24 * 3600.0


class EarlyWarningRule(_Rule):
    """The early pass' warning (``evaluation.early``): sent while the exact evaluation runs,
    resolved (with a follow-up) when the exact evaluation confirms or clears it."""

    type: Literal["early_warning"]


#: The rule models; each one's ``type`` names the plugin deciding it (``alerting/rules/<type>.py``).
Rule = Annotated[
    RecallRegressionRule
    | FalseNegativeRateRule
    | AmplificationRule
    | RecallFloorRule
    | EvaluationFailingRule
    | NoRecentEvaluationRule
    | EarlyWarningRule,
    Field(discriminator="type"),
]


class NotificationsConfig(_Model):
    """Channels and the rules that send to them (delivery is the alerting code's job)."""

    #: Base URL of the Grafana dashboard and of this service's API, for links in alerts.
    dashboard_url: str | None = None
    api_url: str | None = None
    #: Absolute URL of docs/runbook.md; an alert links ``<base>#<alertname in lower case>``.
    runbook_base_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    #: A still-firing alert is notified again this often (Slack, webhooks); null: never.
    repeat_interval_seconds: PositiveSeconds | None = 4 * 3600.0
    #: A checkpoint first seen this long after it was completed (a fresh store over old runs, a
    #: run added with its history, a long outage) is backfill: the alerts it opens or resolves are
    #: recorded but not sent, since an earlier store may have sent them already; null: send all.
    backfill_quiet_seconds: PositiveSeconds | None = 24 * 3600.0
    channels: list[Channel] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)


# -- the whole file --------------------------------------------------------------------------


class Config(_Model):
    """The whole of ``recallwatch.yaml``."""

    store: StoreConfig = Field(default_factory=dict, validate_default=True)
    http: HttpConfig = HttpConfig()
    poll_interval_seconds: PositiveSeconds = 30.0
    evaluation: EvaluationConfig = EvaluationConfig()
    heldout: Annotated[list[HeldoutConfig], Field(min_length=1)]
    runs: Annotated[list[RunConfig], Field(min_length=1)]
    false_negatives: FalseNegativeConfig | None = None
    holes: HolesConfig | None = None
    notifications: NotificationsConfig = NotificationsConfig()

    def encoder_for(self, run: RunConfig) -> EncoderConfig:
        """The encoder a run's checkpoints are evaluated with."""
        return run.encoder or self.evaluation.encoder

    def run(self, name: str) -> RunConfig:
        """The run called ``name``."""
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)


# -- loading -------------------------------------------------------------------------------


def _cross_checks(config: Config) -> list[tuple[str, str]]:
    """Checks across sections, as (dotted path, message) pairs."""
    errors: list[tuple[str, str]] = []

    def unique(values: list[str], section: str, field: str, what: str) -> None:
        seen: set[str] = set()
        for i, v in enumerate(values):
            if v in seen:
                errors.append((f"{section}.{i}.{field}", f"duplicate {what} {v!r}"))
            seen.add(v)

    unique([r.name for r in config.runs], "runs", "name", "run name")
    unique([h.dataset for h in config.heldout], "heldout", "name", "held-out set name")
    notifications = config.notifications
    unique([c.name for c in notifications.channels], "notifications.channels", "name", "channel")
    unique([r.name for r in notifications.rules], "notifications.rules", "name", "rule")
    channels = {c.name for c in notifications.channels}
    runs = {r.name for r in config.runs}
    for i, rule in enumerate(notifications.rules):
        where = f"notifications.rules.{i}"
        errors += [
            (f"{where}.channels", f"unknown channel {c!r}")
            for c in rule.channels
            if c not in channels
        ]
        errors += [(f"{where}.runs", f"unknown run {r!r}") for r in rule.runs if r not in runs]
        if isinstance(rule, EarlyWarningRule) and not config.evaluation.early.enabled:
            errors.append(
                (f"{where}.type", "early_warning needs the early pass: evaluation.early.enabled")
            )
        ks = list(rule.ks) if isinstance(rule, RecallRegressionRule) else []
        ks += [rule.k] if isinstance(rule, RecallFloorRule) else []
        errors += [
            (
                f"{where}.k{'s' if isinstance(rule, RecallRegressionRule) else ''}",
                f"k={k} is not computed: add it to evaluation.ks",
            )
            for k in ks
            if k not in config.evaluation.ks
        ]
    return errors


#: The ``type`` tags of the channel and rule models (a new rule model adds its own).
_TAGS = {
    tag
    for union in (Channel, Rule)
    for model in get_args(get_args(union)[0])
    for tag in get_args(model.model_fields["type"].annotation)
}


def _dotted(loc: tuple[int | str, ...]) -> str:
    # Discriminated unions add the tag to the location; readers want the field path only.
    return ".".join(str(p) for i, p in enumerate(loc) if not (i > 0 and p in _TAGS))


def _message(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        field = str(err["loc"][-1]) if err["loc"] else ""
        if field in {"webhook_url", "url", "secret", "bearer_token", "token", "password"}:
            return f"unknown field; secrets come from {field}_env or {field}_file"
        return "unknown field"
    return msg


def parse_config(
    data: Any, *, source: str | None = None, base_dir: Path | None = None, secrets: bool = True
) -> Config:
    """Validate a parsed document into a ``Config``, or raise ``ConfigError`` with every error.

    ``secrets=False`` checks where each secret comes from but reads none (read-only commands;
    ``missing_secrets`` lists what ``serve`` would lack, ``_Channel.resolve_secrets`` reads one).
    """
    if not isinstance(data, dict):
        raise ConfigError([("", "the configuration must be a mapping")], source=source)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir, "secrets": secrets})
    except ValidationError as exc:
        errors = [(_dotted(tuple(e["loc"])), _message(e)) for e in exc.errors()]
        raise ConfigError(errors, source=source) from None
    errors = _cross_checks(config)
    if errors:
        raise ConfigError(errors, source=source)
    return config


def load_config(path: Path | str, *, secrets: bool = True) -> Config:
    """Read and validate ``recallwatch.yaml`` (YAML or JSON); ``secrets`` as in ``parse_config``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [("", f"cannot read the file: {exc.strerror or exc}")], source=str(p)
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"{where}not valid YAML ({problem})")], source=str(p)) from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent, secrets=secrets)


def missing_secrets(config: Config) -> list[tuple[str, str]]:
    """The secrets ``serve`` would fail to read, as (dotted path, message) pairs."""
    problems: list[tuple[str, str]] = []

    def attempt(where: str, read: Callable[[], object]) -> None:
        try:
            read()
        except ValueError as exc:
            problems.append((where, str(exc)))

    for name in ("web_token", "metrics_token"):
        for kind in ("env", "file"):
            ref = getattr(config.http, f"{name}_{kind}")
            if ref is not None:
                attempt(f"http.{name}_{kind}", functools.partial(_read_secret, kind, str(ref)))
    for i, channel in enumerate(config.notifications.channels):
        before = len(problems)
        for name, _ in channel.secret_fields:
            for kind in ("env", "file"):
                ref = getattr(channel, f"{name}_{kind}")
                if ref is not None:
                    where = f"notifications.channels.{i}.{name}_{kind}"
                    attempt(where, functools.partial(_read_secret, kind, str(ref)))
        if len(problems) == before:  # all there: check their format too (signing secrets)
            attempt(f"notifications.channels.{i}", channel.resolve_secrets)
    fn = config.false_negatives
    if fn is not None:
        refs = [("env", v) for v in [fn.http_auth_env] if v is not None]
        refs += [("file", str(f)) for f in [fn.http_auth_file] if f is not None]
        refs += [("env", item.partition("=")[2].strip()) for item in fn.http_header_env]
        for kind, ref in refs:
            attempt("false_negatives", functools.partial(_read_secret, kind, ref))
    return problems
