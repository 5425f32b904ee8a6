"""Alert rules: one module per rule ``type`` of the configuration, registered by that type.

Importing this package imports every module in it, so each built-in rule type registers itself
(``rules.base.register``); the engine finds a configured rule's class with ``rule_for``. A new
rule type is a new module here plus its config model in ``config.py`` (see ``rules.base``).

Built-in types: ``recall_regression``, ``false_negative_rate``, ``label_noise_amplification``,
``recall_floor``, ``evaluation_failing``, ``no_recent_evaluation``.
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

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def alertnames() -> frozenset[str]:
    """Every Alertmanager ``alertname`` the registered rule types' alerts may carry."""
    return frozenset().union(*(cls.alertnames() for cls in RULE_TYPES.values()))
