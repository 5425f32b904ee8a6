#!/usr/bin/env python3
"""Generate recallwatch's Prometheus rules, and the Kubernetes PrometheusRule, from one place.

The two settings every deployment has to get right are set here once:

* ``JOB_SELECTOR``: the label matchers of recallwatch's scrape target in ``up{...}``
  (``RecallwatchDown``). The Compose example scrapes ``job_name: recallwatch``; the Kubernetes
  ServiceMonitor takes the job name from the Service's ``app.kubernetes.io/name`` label
  (``jobLabel``), also ``recallwatch``. Scraped another way (pod annotations: ``job`` is then the
  scrape config's name), generate a copy with ``--job-selector``.
* ``RUNBOOK_BASE_URL``: where people open docs/runbook.md; every ``runbook_url`` is
  ``<base>#<alertname in lower case>``, as the daemon's ``notifications.runbook_base_url`` makes
  them. Set both to the same URL.

Usage::

    python alerts/generate.py              # rewrite the committed files
    python alerts/generate.py --check      # exit 1 (and print a diff) when they are stale
    python alerts/generate.py --job-selector 'job="kubernetes-pods",app="recallwatch"' \\
        --runbook-base-url https://git.example.org/ml/recallwatch/blob/main/docs/runbook.md \\
        --rules my.rules.yml --prometheusrule my-prometheusrule.yaml

Why a Python script and not a jsonnet mixin: there is no jsonnet toolchain in this project's
environment or CI, the rules are few, PyYAML is already a dependency, and ``--check`` runs in the
test suite (tests/ops/test_rules_and_dashboards.py), so the committed output cannot drift.

Every alert carries ``service: recallwatch`` (as the daemon's own Alertmanager alerts do) and
``source: prometheus`` (the daemon's do not), so one Alertmanager route takes both and an inhibit
rule (deploy/alertmanager-inhibit.yml) can mute the Prometheus copy of an alert the daemon sends.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES_PATH = REPO / "alerts" / "recallwatch.rules.yml"
PROMETHEUSRULE_PATH = REPO / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"

#: Label matchers selecting recallwatch's scrape targets in ``up``.
JOB_SELECTOR = 'job="recallwatch"'
#: Absolute URL of docs/runbook.md (the daemon's ``notifications.runbook_base_url``).
RUNBOOK_BASE_URL = "https://git.example/recallwatch/blob/main/docs/runbook.md"
#: Labels on every alert (see the module docstring).
COMMON_LABELS = {"service": "recallwatch", "source": "prometheus"}

#: A failure (or success) counter "increased in the last hour", also when its series first
#: appeared in that hour already above 0: the exporter creates a (run, reason) failure series at
#: its first failure, at 1, and ``increase()`` never sees that first step. A series counts as new
#: when it had no sample between one day and one hour ago.
_INCREASED = (
    "sum by (run) (increase({m}[{w}])) > 0\n"
    "or\n"
    "sum by (run) (\n"
    "  {m}\n"
    "  unless last_over_time({m}[1d] offset {w})\n"
    ") > 0"
)


def _indent(text: str, spaces: int = 2) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


#: Seconds per unit of a Prometheus duration.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(duration: str) -> int:
    number, unit = duration[:-1], duration[-1]
    if unit not in _UNITS or not number.isdigit():
        raise ValueError(f"not a duration like 30s, 5m, 1h: {duration!r}")
    return int(number) * _UNITS[unit]


#: How long a regression alert holds after the last regressed sample (see the regression alerts).
HOLD = "10m"


def rule_groups(
    job_selector: str,
    runbook_base_url: str,
    *,
    window: str = "1h",
    for_override: str | None = None,
) -> list[dict[str, Any]]:
    """The rule groups, for a job selector and a runbook base URL.

    ``window`` (the "last hour" of the failing and no-recent-evaluation alerts) and
    ``for_override`` (every alert's ``for``) exist for integration tests that cannot wait an
    hour; the committed files use the defaults.
    """
    seconds = _seconds(window)

    def alert(
        name: str,
        expr: str,
        duration: str,
        severity: str,
        summary: str,
        description: str,
    ) -> dict[str, Any]:
        return {
            "alert": name,
            # Multi-line expressions as block literals; one-liners stay inline.
            "expr": expr.strip() + "\n" if expr.startswith("\n") else expr.strip(),
            "for": for_override or duration,
            "labels": {"severity": severity, **COMMON_LABELS},
            "annotations": {
                "summary": summary,
                "description": " ".join(description.split()),
                "runbook_url": f"{runbook_base_url}#{name.lower()}",
            },
        }

    failing = (
        "(\n"
        + _indent(_INCREASED.format(m="recallwatch_evaluation_failures_total", w=window))
        + "\n)\nunless on (run)\n(\n"
        + _indent(_INCREASED.format(m="recallwatch_evaluations_total", w=window))
        + "\n)"
    )
    rules = [
        alert(
            "RecallRegressionAfterMiningChange",
            # Only verdicts against the previous mining configuration's baseline, on runs whose
            # mining configuration did change (the exporter exports the change timestamp only
            # then). Same-mining and pinned-baseline verdicts are RecallRegression below.
            # max_over_time: during a backfill the exporter shows each checkpoint to one scrape
            # only (docs/daemon.md), so a regressed checkpoint followed quickly by a recovered
            # one is a single sample; the verdict is already a statistical decision, so one
            # sample fires, and the alert holds for HOLD after the last regressed sample.
            f"""
max by (run, dataset, k) (
  max_over_time(recallwatch_recall_regression{{compare_with="previous_mining"}}[{HOLD}]) == 1
)
and on (run)
max by (run) (max_over_time(recallwatch_mining_change_timestamp_seconds[{HOLD}]))
""",
            "0m",
            "critical",
            "recall@{{ $labels.k }} regressed on run {{ $labels.run }} ({{ $labels.dataset }}) "
            "after a mining change",
            """
The latest checkpoint of run {{ $labels.run }} retrieves significantly worse than the best
checkpoint under the previous mining configuration, on the clean held-out set
{{ $labels.dataset }} at k={{ $labels.k }}. Mined negatives are probably false negatives. The
recallwatch alert and GET /api/v1/runs/{{ $labels.run }}/evaluations carry the evidence and the
recommended filter.
""",
        ),
        alert(
            "RecallRegression",
            f"""
max by (run, dataset, k) (
  max_over_time(recallwatch_recall_regression{{compare_with=~"same_mining|pinned"}}[{HOLD}]) == 1
)
""",
            "0m",
            "warning",
            "recall@{{ $labels.k }} regressed on run {{ $labels.run }} ({{ $labels.dataset }}), "
            "not after a mining change",
            """
The latest checkpoint of run {{ $labels.run }} retrieves significantly worse on the clean
held-out set {{ $labels.dataset }} at k={{ $labels.k }} than an earlier checkpoint under the same
mining configuration (or the pinned baseline checkpoint). GET
/api/v1/runs/{{ $labels.run }}/evaluations carries the evidence.
""",
        ),
        alert(
            "RecallEarlyWarning",
            # The early pass (pooled corpus) warned before the exact evaluation: the pooled
            # recall@k, an upper bound on the exact one, fell significantly below the previous
            # checkpoint's exact recall. The gauge stays 1 once the exact pass confirms it; the
            # regression alerts then inhibit this one (deploy/alertmanager-inhibit.yml).
            """
max by (run, dataset, k) (
  recallwatch_early_recall_upper_bound
  and on (run, dataset)
  (recallwatch_early_warning == 1)
)
""",
            "0m",
            "warning",
            "early warning: recall@{{ $labels.k }} of run {{ $labels.run }} "
            "({{ $labels.dataset }}) "
            'is at most {{ $value | printf "%.2f" }} (pooled corpus, before the exact evaluation)',
            """
The early pass on a pooled corpus found the recall@{{ $labels.k }} of run {{ $labels.run }}'s
newest checkpoint on {{ $labels.dataset }} significantly below the previous checkpoint's exact
recall, and the pooled value is an upper bound on the exact one. The exact evaluation follows and
confirms or clears it: GET /api/v1/early?run={{ $labels.run }}.
""",
        ),
        alert(
            "FalseNegativeRateHigh",
            # The lower bound of the 95% interval: too noisy with confidence, not just a noisy
            # estimate.
            'recallwatch_false_negative_ratio{bound="lower"} > 0.05',
            "15m",
            "warning",
            "mined negatives of run {{ $labels.run }}: false-negative rate above 5%",
            """
At least {{ $value | humanizePercentage }} of sampled mined negatives of run {{ $labels.run }}
are actually relevant (95% lower bound). Apply a confidence filter (range_min / relative_margin)
or ensemble agreement before training further.
""",
        ),
        alert(
            "RecallwatchEvaluationFailing",
            "\n" + failing,
            "15m",
            "warning",
            "recallwatch cannot evaluate checkpoints of run {{ $labels.run }}",
            """
Evaluations of run {{ $labels.run }} failed in the last hour and none succeeded. See
recallwatch_evaluation_failures_total by reason and the daemon's log.
""",
        ),
        alert(
            "RecallwatchNoRecentEvaluation",
            # Checkpoints waited for the whole last hour (also the run's very first one, before
            # any success exists) and no evaluation of the run succeeded in that hour. A run
            # whose trainer stopped writing checkpoints has none pending and does not fire.
            f"""
(
  min by (run) (min_over_time(recallwatch_checkpoints_pending[{window}])) > 0
  and on (run)
  min by (run) (recallwatch_checkpoints_pending offset {window}) > 0
)
unless on (run)
(time() - max by (run) (recallwatch_last_successful_evaluation_timestamp_seconds) < {seconds})
""",
            "10m",
            "warning",
            "no checkpoint of run {{ $labels.run }} evaluated for over an hour",
            """
Checkpoints of run {{ $labels.run }} have been waiting for over an hour and no evaluation of the
run succeeded in that time (or ever).
""",
        ),
        alert(
            "RecallwatchDown",
            f"up{{{job_selector}}} == 0 or absent(up{{{job_selector}}})",
            "5m",
            "critical",
            "recallwatch is down or not scraped",
            f"""
Prometheus cannot scrape recallwatch (up{{{job_selector}}}): no recall is being watched.
""",
        ),
    ]
    return [{"name": "recallwatch.alerts", "rules": rules}]


class _Dumper(yaml.SafeDumper):
    """Block literals for multi-line strings; lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else ">" if len(data) > 80 and " " in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


HEADER = """\
# GENERATED by alerts/generate.py: edit that script, then run `python alerts/generate.py`.
# tests/ops checks this file equals the script's output.
"""


def rules_file(
    job_selector: str = JOB_SELECTOR, runbook_base_url: str = RUNBOOK_BASE_URL, **timing: Any
) -> str:
    """alerts/recallwatch.rules.yml (``timing``: ``rule_groups``' window / for_override)."""
    return (
        HEADER
        + "# Prometheus rules for recallwatch. Load with `rule_files: [recallwatch.rules.yml]`.\n"
        + "# Unit tests: `promtool test rules alerts/tests/*.test.yml`.\n"
        + f"# Job selector: {job_selector}   Runbook: {runbook_base_url}\n"
        + _dump({"groups": rule_groups(job_selector, runbook_base_url, **timing)})
    )


def prometheusrule_file(
    job_selector: str = JOB_SELECTOR, runbook_base_url: str = RUNBOOK_BASE_URL, **timing: Any
) -> str:
    """deploy/kubernetes/base/prometheusrule.yaml: the same groups for the Prometheus operator."""
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "recallwatch",
            "labels": {"app.kubernetes.io/name": "recallwatch"},
        },
        "spec": {"groups": rule_groups(job_selector, runbook_base_url, **timing)},
    }
    return (
        HEADER
        + "# The rules of alerts/recallwatch.rules.yml for the Prometheus operator. Its\n"
        + "# Prometheus must select this object (ruleSelector; often a `release: <name>` label).\n"
        + _dump(doc)
    )


def outputs(
    job_selector: str = JOB_SELECTOR,
    runbook_base_url: str = RUNBOOK_BASE_URL,
    rules: Path = RULES_PATH,
    prometheusrule: Path = PROMETHEUSRULE_PATH,
    **timing: Any,
) -> dict[Path, str]:
    """Every generated file and its content."""
    return {
        rules: rules_file(job_selector, runbook_base_url, **timing),
        prometheusrule: prometheusrule_file(job_selector, runbook_base_url, **timing),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or --check) the generated files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-selector", default=JOB_SELECTOR, help="matchers inside up{...}")
    parser.add_argument("--runbook-base-url", default=RUNBOOK_BASE_URL)
    parser.add_argument("--rules", type=Path, default=RULES_PATH)
    parser.add_argument("--prometheusrule", type=Path, default=PROMETHEUSRULE_PATH)
    parser.add_argument(
        "--window", default="1h", help="the alerts' 'last hour' (integration tests: e.g. 2m)"
    )
    parser.add_argument(
        "--for", dest="for_override", default=None, help="every alert's `for` (tests: e.g. 0s)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if not args.runbook_base_url.startswith(("http://", "https://")):
        parser.error("--runbook-base-url must be an absolute http(s) URL")
    try:
        files = outputs(
            args.job_selector,
            args.runbook_base_url,
            args.rules,
            args.prometheusrule,
            window=args.window,
            for_override=args.for_override,
        )
    except ValueError as e:
        parser.error(str(e))
    stale = 0
    for path, text in files.items():
        current = path.read_text() if path.exists() else ""
        if args.check:
            if current != text:
                stale += 1
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        str(path),
                        "generated",
                    )
                )
        elif current != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"{stale} generated file(s) stale: run python alerts/generate.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
