"""Alert rules: one module per rule ``type`` of the configuration, registered by that type.

Importing this package imports every rule in it, so each built-in rule type registers itself
(``rules.base.register``); the engine finds a configured rule's class with ``rule_for``. A rule
is a module here, or a package here whose ``rule`` module holds it when the rule type has
helpers of its own (``recall_regression/``: segments and baselines, the paired and level tests,
the variance history, the alert texts); ``base`` is the rule framework, not a rule. A new rule
type is a new module here plus its config model in ``config.py`` (see ``rules.base``).

Built-in types: ``recall_regression``, ``false_negative_rate``, ``label_noise_amplification``,
``recall_floor``, ``evaluation_failing``, ``no_recent_evaluation``, ``early_warning``.
"""

from __future__ import annotations

import importlib
import pkgutil

from recallwatch.alerting.rules.base import (
    RULE_TYPES,
    AlertRule,
    Decision,
    RuleConfig,
    RuleContext,
    VerdictWrite,
    by_step,
    register,
    rule_for,
)

__all__ = [
    "RULE_TYPES",
    "AlertRule",
    "Decision",
    "RuleConfig",
    "RuleContext",
    "VerdictWrite",
    "alertnames",
    "by_step",
    "register",
    "rule_for",
]

#: The module of this package that is not a rule.
_FRAMEWORK = "base"

for _module in pkgutil.iter_modules(__path__):
    if _module.name == _FRAMEWORK:
        continue
    # A package's helper modules are not rules: only its ``rule`` module registers one.
    _suffix = ".rule" if _module.ispkg else ""
    importlib.import_module(f"{__name__}.{_module.name}{_suffix}")


def alertnames() -> frozenset[str]:
    """Every Alertmanager ``alertname`` the registered rule types' alerts may carry."""
    return frozenset().union(*(cls.alertnames() for cls in RULE_TYPES.values()))
