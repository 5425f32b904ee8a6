"""Plotly figures (as JSON-ready dicts) of a run's history and of a mined set's FN audit.

Pure functions of the views (``views.runs``, the store's ``FnEstimate``): the pages put the
figure in a ``<script type="application/json" class="figure">`` block and ``static/chart.js`` draws
it with the plotly.js that the ``plotly`` Python package bundles; the report inlines both. Every
plotted point carries its checkpoint name (``customdata``), so tests and people can tie a point to
the API.
"""

from __future__ import annotations

from typing import Any

from recallwatch.store import FnEstimate
from recallwatch.views.runs import RunHistory

__all__ = ["fn_buckets_figure", "fn_curve_figure", "run_figure"]

#: Metrics the run chart plots against step (others are in the tables).
PLOTTED = ("recall", "ndcg")
_MINING = "#8a5cf6"
_ALERT = "#c62828"


def run_figure(history: RunHistory) -> dict[str, Any]:
    """recall@k and nDCG@k per held-out set, and the FN rate (right axis), against step.

    Mining changes are dashed vertical lines at their step (shape ``name`` ``mining_change:CKPT``);
    alerts are red dotted lines at the step of the checkpoint that opened them (``alert:ID``), each
    with a label.
    """
    traces: list[dict[str, Any]] = []
    points = [p for p in history.points if p.checkpoint.step is not None]
    for dataset in history.datasets:
        keys = sorted(
            {
                (m, k)
                for p in points
                for m, by_k in p.metrics.get(dataset, {}).items()
                if m in PLOTTED
                for k in by_k
            }
        )
        for metric, k in keys:
            have = [p for p in points if k in p.metrics.get(dataset, {}).get(metric, {})]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": f"{metric}@{k}"
                    + (f" ({dataset})" if len(history.datasets) > 1 else ""),
                    "meta": {"dataset": dataset, "metric": metric, "k": k},
                    "x": [p.checkpoint.step for p in have],
                    "y": [p.metrics[dataset][metric][k] for p in have],
                    "customdata": [p.checkpoint.name for p in have],
                    "hovertemplate": "step %{x}<br>%{customdata}<br>"
                    + f"{metric}@{k} = %{{y:.4f}}<extra></extra>",
                }
            )
    with_fn = [p for p in points if p.fn is not None]
    if with_fn:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "FN rate (mined set)",
                "meta": {"metric": "fn_rate"},
                "yaxis": "y2",
                "line": {"dash": "dot", "color": "#e07b00"},
                "x": [p.checkpoint.step for p in with_fn],
                "y": [p.fn.estimate for p in with_fn if p.fn is not None],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [p.fn.upper - p.fn.estimate for p in with_fn if p.fn is not None],
                    "arrayminus": [p.fn.estimate - p.fn.lower for p in with_fn if p.fn is not None],
                },
                "customdata": [p.checkpoint.name for p in with_fn],
                "hovertemplate": "step %{x}<br>%{customdata}<br>FN rate %{y:.1%}<extra></extra>",
            }
        )
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for step, name in history.mining_changes:
        shapes.append(_vline(step, _MINING, "dash", f"mining_change:{name}"))
        annotations.append(_label(step, "mining change", _MINING, 1.0))
    for record in history.alerts:
        opened = history.opened_step(record)
        if opened is None:
            continue
        shapes.append(_vline(opened, _ALERT, "dot", f"alert:{record.alert.id}"))
        annotations.append(_label(opened, record.alert.alertname, _ALERT, 0.92))
    layout: dict[str, Any] = {
        "margin": {"l": 55, "r": 60, "t": 30, "b": 45},
        "xaxis": {"title": {"text": "step"}, "zeroline": False},
        "yaxis": {"title": {"text": "metric"}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "closest",
        "shapes": shapes,
        "annotations": annotations,
    }
    if with_fn:
        layout["yaxis2"] = {
            "title": {"text": "FN rate"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "tickformat": ".0%",
        }
    return {"data": traces, "layout": layout}


def _vline(step: int, color: str, dash: str, name: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": step,
        "x1": step,
        "y0": 0,
        "y1": 1,
        "line": {"color": color, "dash": dash, "width": 2},
        "name": name,
    }


def _label(step: int, text: str, color: str, y: float) -> dict[str, Any]:
    return {
        "x": step,
        "xref": "x",
        "y": y,
        "yref": "paper",
        "text": text,
        "showarrow": False,
        "xanchor": "left",
        "font": {"color": color, "size": 11},
    }


def fn_buckets_figure(estimate: FnEstimate) -> dict[str, Any]:
    """The FN rate per mining-rank bucket with its 95% interval, and the overall rate."""
    buckets = list(estimate.buckets)
    return {
        "data": [
            {
                "type": "bar",
                "name": "FN rate by rank bucket",
                "x": [b.rank_bucket for b in buckets],
                "y": [b.estimate for b in buckets],
                "customdata": [b.sample_size for b in buckets],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [b.upper - b.estimate for b in buckets],
                    "arrayminus": [b.estimate - b.lower for b in buckets],
                },
                "hovertemplate": "ranks %{x}: %{y:.1%} (n=%{customdata})<extra></extra>",
            }
        ],
        "layout": {
            "margin": {"l": 55, "r": 20, "t": 30, "b": 45},
            "xaxis": {"title": {"text": "mining rank"}, "type": "category"},
            "yaxis": {"title": {"text": "FN rate"}, "tickformat": ".0%", "rangemode": "tozero"},
            "shapes": [
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": estimate.estimate,
                    "y1": estimate.estimate,
                    "line": {"color": "#555", "dash": "dash"},
                }
            ],
        },
    }


_FAMILY_COLORS = {
    "range_min": "#1f77b4",
    "absolute_margin": "#2ca02c",
    "relative_margin": "#d62728",
}


def fn_curve_figure(curve: dict[str, Any]) -> dict[str, Any] | None:
    """The filter curve (``mining.curve``): projected FN rate against the share dropped.

    One line per family with the interval as error bars; the recommended filter is a star on
    its family's line, the target a dashed line. None when the curve has no point.
    """
    traces: list[dict[str, Any]] = []
    rec = curve.get("recommended") or {}
    for family, points in (curve.get("families") or {}).items():
        pts = [p for p in points if (p.get("projected") or {}).get("estimate") is not None]
        if not pts:
            continue
        est = [p["projected"]["estimate"] for p in pts]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": family,
                "meta": {"family": family},
                "line": {"color": _FAMILY_COLORS.get(family, "#555")},
                "marker": {"size": 4},
                "x": [p["dropped_fraction"] for p in pts],
                "y": est,
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [p["projected"]["upper"] - e for p, e in zip(pts, est, strict=True)],
                    "arrayminus": [
                        e - p["projected"]["lower"] for p, e in zip(pts, est, strict=True)
                    ],
                    "thickness": 1,
                },
                "customdata": [[p["describe"], p["percentile"]] for p in pts],
                "hovertemplate": "%{customdata[0]} (p%{customdata[1]:.0f})<br>drops %{x:.1%}"
                "<br>projected FN rate %{y:.1%}<extra></extra>",
            }
        )
        chosen = [
            p for p in pts if family == rec.get("family") and p["threshold"] == rec.get("threshold")
        ]
        if chosen:
            p = chosen[0]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"recommended: {p['describe']}",
                    "meta": {"recommended": True, "family": family},
                    "marker": {"symbol": "star", "size": 16, "color": "#000"},
                    "x": [p["dropped_fraction"]],
                    "y": [p["projected"]["estimate"]],
                    "customdata": [p["describe"]],
                    "hovertemplate": "recommended %{customdata}<extra></extra>",
                }
            )
    if not traces:
        return None
    target = curve.get("target")
    shapes = []
    if isinstance(target, int | float):
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": target,
                "y1": target,
                "name": "target",
                "line": {"color": "#555", "dash": "dash"},
            }
        )
    return {
        "data": traces,
        "layout": {
            "margin": {"l": 60, "r": 20, "t": 30, "b": 45},
            "xaxis": {
                "title": {"text": "share of hard negatives dropped"},
                "tickformat": ".0%",
                "zeroline": False,
            },
            "yaxis": {
                "title": {"text": "projected FN rate (95%)"},
                "tickformat": ".0%",
                "rangemode": "tozero",
            },
            "legend": {"orientation": "h", "y": -0.2},
            "hovermode": "closest",
            "shapes": shapes,
        },
    }
