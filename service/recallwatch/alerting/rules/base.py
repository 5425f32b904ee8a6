"""What an alert rule is: a plugin for one rule ``type`` of the configuration, and their registry.

A rule type is a subclass of ``AlertRule`` registered under its config ``type`` with
``@register``. The engine makes one instance per configured rule (``rule_for``, dispatching on
``config.type``: no ``isinstance`` chain) and calls it at three moments:

- ``prepare(row)``: before a checkpoint is decided, *outside* the decision lock, for slow reads
  that should not hold up other decisions (the regression rule indexes the held-out texts here);
- ``decide(row)``: after a checkpoint of a run the rule applies to became evaluated (or failed,
  for types with ``decides_failed``);
- ``decide_periodic(run, now)``: on the engine's periodic tick, for time-based rules;
- ``decide_early(row, verdict)``: when the early pass before ``row``'s exact evaluation warned
  (``daemon.early``), while that evaluation still runs (the ``early_warning`` rule).

**What a rule receives.** Its config model (``self.config``), the checkpoint row being decided,
and a ``RuleContext`` (``self.context``): the checkpoints' current evaluations
(``current_evaluations``, cached for one decision), the store's read side (``store``: a rule
reads, it never writes), the evidence reader, the configuration and the clock.

**What it returns.** ``Decision``s, one per alert key (``AlertKey``): firing or not, what opened
it, how to build the alert should the key open a new episode (``build``, called with the new
episode's id), and, for the regression rule, the verdict to record (``VerdictWrite``). The engine
records the verdicts, then turns each decision into a transition of the key's episode (fire,
repeat, resolve: ``alerting.episodes``) and writes the alerts and their messages in one
transaction.

**Adding a rule type** is one new module in ``alerting/rules/`` (a registered ``AlertRule``
subclass; modules of this package are imported when it is), or a package whose ``rule`` module
holds it when the rule needs helpers of its own (``recall_regression/``), plus its config model in
``config.py`` (a ``_Rule`` subclass with ``type: Literal["<type>"]``, added to the ``Rule``
union).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from recallwatch.alerting.evidence import EvidenceReader
from recallwatch.alerting.links import links_for
from recallwatch.config import Config
from recallwatch.errors import ConfigError
from recallwatch.records.alert import Alert, AlertKey, Evidence, Resolution
from recallwatch.store import CheckpointRow, EarlyVerdict, EvaluationRow, Store

__all__ = [
    "RULE_TYPES",
    "AlertRule",
    "Decision",
    "RuleConfig",
    "RuleContext",
    "VerdictWrite",
    "by_step",
    "register",
    "rule_for",
]


class RuleConfig(Protocol):
    """What every rule's config model has (``config._Rule``): its name, type and channels."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def channels(self) -> Sequence[str]: ...
    @property
    def runs(self) -> Sequence[str]: ...
    @property
    def severity(self) -> str: ...


ConfigT = TypeVar("ConfigT", bound=RuleConfig)
RuleT = TypeVar("RuleT", bound="type[AlertRule[Any]]")


@dataclass(frozen=True)
class VerdictWrite:
    """A regression verdict for the engine to record (``store.ledger.record_verdict``)."""

    checkpoint_id: int
    dataset: str
    metric: str
    k: int
    #: The comparison it answers (``previous_mining``, ``same_mining``, ``pinned``, or one of
    #: those with ``:rule-name`` when several rules make the same comparison).
    kind: str
    value: float
    regressed: bool
    baseline_checkpoint_id: int | None = None
    baseline_value: float | None = None
    p_value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """One rule's answer for one key: firing or not, and how to build the alert if it fires."""

    rule: RuleConfig
    key: AlertKey
    firing: bool
    #: What opens the episode when it fires (a checkpoint name, or a time for time-based rules).
    opened_by: str
    build: Callable[[str], Alert] | None
    #: The checkpoint that made this decision (a resolution names it).
    checkpoint: CheckpointRow | None = None
    #: Added to the description of the alert when this decision resolves it.
    note: str | None = None
    #: The regression verdict behind the decision, recorded by the engine before it applies.
    verdict: VerdictWrite | None = None
    #: What resolves the alert when this decision does (the resolved message carries it).
    resolution: Resolution | None = None


def by_step(row: CheckpointRow) -> tuple[bool, int, str]:
    """Checkpoints in step order (checkpoints without a step last, by name)."""
    return (row.step is None, row.step or 0, row.name)


class RuleContext:
    """What rules read: configuration, store (read side), evaluations, evidence and the clock."""

    def __init__(
        self,
        config: Config,
        store: Store,
        evidence: EvidenceReader,
        *,
        clock: Callable[[], float],
        started_at: float,
    ) -> None:
        self.config = config
        self.store = store
        self.evidence = evidence
        self.clock = clock
        #: When this process started deciding (time-based rules count from it at first).
        self.started_at = started_at
        self._evaluations: dict[int, list[EvaluationRow]] = {}

    def begin_decision(self) -> None:
        """Forget what the last decision read (stored evaluations are cached for one decision)."""
        self._evaluations.clear()

    def current_evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        """A checkpoint's finished evaluations under its current key (cached for one decision)."""
        cached = self._evaluations.get(checkpoint_id)
        if cached is None:
            cached = self._evaluations[checkpoint_id] = self.store.results.current_evaluations(
                checkpoint_id
            )
        return cached


class AlertRule(Generic[ConfigT]):
    """One rule type: subclass, set ``type`` and ``alertname``, override the hooks, ``register``.

    An instance decides for one configured rule (``config``), reading through ``context``.
    """

    #: The config ``type`` this class decides for (the registry key).
    type: ClassVar[str]
    #: Alertmanager ``alertname`` of its alerts (CamelCase, like the Prometheus rules in
    #: ``alerts/``: the same event has the same name on both paths).
    alertname: ClassVar[str]
    #: Whether ``decide`` also runs for failed checkpoints (otherwise evaluated ones only).
    decides_failed: ClassVar[bool] = False
    #: Whether, when an older checkpoint finishes after a newer one, the run's newest evaluated
    #: checkpoint decides instead (alerts follow the newest); False keeps the late one's answer.
    follows_newest: ClassVar[bool] = True

    def __init__(self, config: ConfigT, context: RuleContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def alertnames(cls) -> frozenset[str]:
        """Every ``alertname`` its alerts may carry (override when it has more than one)."""
        return frozenset({cls.alertname})

    def applies_to(self, run: str) -> bool:
        """Whether the rule applies to ``run`` (its ``runs``, or every run when empty)."""
        return not self.config.runs or run in self.config.runs

    def prepare(self, row: CheckpointRow) -> None:
        """Slow reads before ``row`` is decided, outside the decision lock (default: none)."""

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """Decisions after ``row`` became evaluated (or failed, with ``decides_failed``)."""
        return []

    def decide_periodic(self, run: str, now: float) -> list[Decision]:
        """Decisions of the periodic tick for ``run`` (time-based rules; default: none)."""
        return []

    def decide_early(self, row: CheckpointRow, verdict: EarlyVerdict) -> list[Decision]:
        """Decisions on an early warning before ``row``'s exact evaluation (default: none)."""
        return []

    def decision(
        self,
        key: AlertKey,
        firing: bool,
        opened_by: str,
        build: Callable[[str], Alert] | None,
        checkpoint: CheckpointRow | None = None,
        *,
        note: str | None = None,
        verdict: VerdictWrite | None = None,
        resolution: Resolution | None = None,
    ) -> Decision:
        """A ``Decision`` of this rule."""
        return Decision(
            self.config, key, firing, opened_by, build, checkpoint, note, verdict, resolution
        )

    def new_alert(
        self,
        aid: str,
        key: AlertKey,
        row: CheckpointRow | None,
        summary: str,
        description: str,
        evidence: Evidence,
        *,
        run: str | None = None,
        alertname: str | None = None,
    ) -> Alert:
        """A firing alert of this rule with its links and runbook URL, started now."""
        n = self.context.config.notifications
        run_name = run or (row.run if row else key.run)
        name = alertname or self.alertname
        runbook = n.runbook_base_url
        return Alert(
            id=aid,
            key=key,
            rule_type=self.config.type,
            alertname=name,
            severity=self.config.severity,
            status="firing",
            summary=summary,
            description=description,
            run=run_name,
            checkpoint=row.name if row else None,
            step=row.step if row else None,
            started_at=self.context.clock(),
            evidence=evidence,
            links=links_for(
                dashboard_url=n.dashboard_url,
                api_url=n.api_url,
                run=run_name,
                checkpoint=row.name if row else None,
                alert=aid,
            ),
            runbook_url=None if runbook is None else f"{runbook.split('#')[0]}#{name.lower()}",
        )


#: Rule classes by config ``type``.
RULE_TYPES: dict[str, type[AlertRule[Any]]] = {}


def register(cls: RuleT) -> RuleT:
    """Class decorator: register a rule class under its ``type``."""
    existing = RULE_TYPES.get(cls.type)
    if existing is not None and existing is not cls:
        raise ValueError(f"rule type {cls.type!r} is already registered by {existing.__name__}")
    RULE_TYPES[cls.type] = cls
    return cls


def rule_for(config: RuleConfig, context: RuleContext) -> AlertRule[Any]:
    """The rule deciding for one configured rule, by its ``type``."""
    cls = RULE_TYPES.get(config.type)
    if cls is None:
        raise ConfigError(
            [
                (
                    f"notifications.rules.{config.name}.type",
                    f"no rule type {config.type!r} is registered "
                    f"(known: {', '.join(sorted(RULE_TYPES))})",
                )
            ]
        )
    return cls(config, context)
