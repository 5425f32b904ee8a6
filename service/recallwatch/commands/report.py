"""``recallwatch report``: one self-contained HTML file of a run's history, to read offline.

The file has the run page's chart (recall@k, nDCG@k and the FN rate against step, mining changes
and alerts marked), every evaluated checkpoint with its metrics, intervals and lost/gained queries,
and the run's alerts with their evidence. plotly.js is embedded, so it opens from disk with no
network (for people without Grafana, or to attach to a pull request). It reads the store only and
can run while the daemon is serving.

    recallwatch report --config recallwatch.yaml --run NAME --out report.html
    recallwatch report --store state/recallwatch.db --run NAME --out report.html
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recallwatch.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run (charts inline, no network)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", type=Path, help="recallwatch.yaml (its store and held-out sets)"
    )
    source.add_argument("--store", type=Path, help="the SQLite store (query texts left out)")
    p.add_argument("--run", required=True, help="the run's name")
    p.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; print where."""
    from recallwatch.store import Store
    from recallwatch.web.standalone import render_standalone

    heldouts: dict[str, Path] = {}
    if args.config is not None:
        from recallwatch.config import load_config

        config = load_config(args.config, secrets=False)  # the report reads none
        store_path = config.store.path
        heldouts = {h.dataset: h.path for h in config.heldout}
    else:
        store_path = args.store
    if not Path(store_path).is_file():
        raise ConfigError(
            [("store", f"no store at {store_path}")], source=str(args.config or "--store")
        )
    store = Store.open(store_path, exclusive=False)
    try:
        html = render_standalone(store, args.run, heldouts=heldouts, generated_at=time.time())
    finally:
        store.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.1f} MB): run {args.run}")
    return 0
