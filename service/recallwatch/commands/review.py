"""``recallwatch review``: label a mined set's sampled negatives in the browser, without a daemon.

A local server (127.0.0.1 by default) serves the daemon's review page over one mined set; labels
go to ``--labels`` (CSV, or JSON lines for ``.jsonl``), rewritten after every label, and a label
file that exists is read first, so a review resumes where it stopped. The sample is the seeded one
``fn-rate`` draws with the same ``--seed`` and ``--sample``; ``fn-rate --oracle labels:FILE`` with
them reads the labels back to the estimate the page shows.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import webbrowser
from datetime import UTC
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from recallwatch.commands.common import positive_int
from recallwatch.commands.fn_rate import add_mined_arguments
from recallwatch.mining.audit import AuditConfig
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles.labels import read_labels
from recallwatch.mining.review import plan_review, write_review_labels
from recallwatch.mining.sampling import RankBuckets
from recallwatch.mining.st_formats import ImportOptions
from recallwatch.store import ReviewRow, Store
from recallwatch.web import WebSettings, mount
from recallwatch.web.review import enable_review
from recallwatch.web.review_sets import ReviewSets, ReviewSettings, file_set, review_labels

__all__ = ["add_parser", "review_app", "run"]

EPILOG = """\
examples:
  recallwatch review --mined mined.jsonl --corpus data/corpus --labels labels.csv
  recallwatch fn-rate --mined mined.jsonl --corpus data/corpus --oracle labels:labels.csv

Writes need the review token: the page is opened with it (in the URL fragment, which is never
sent to the server); give --token (or $RECALLWATCH_REVIEW_TOKEN) to choose it.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``review`` subcommand."""
    p = sub.add_parser(
        "review",
        help="label sampled mined negatives in the browser",
        description="Serve the review page over one mined set on this machine; labels are "
        "written to --labels after each one.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_mined_arguments(p, corpus_required=True)
    p.add_argument("--labels", required=True, type=Path, help="label file (.csv or .jsonl)")
    p.add_argument("--sample", type=positive_int, default=400, help="sample size (default 400)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--sampling", choices=("uniform", "stratified"), default="uniform")
    p.add_argument("--buckets", default="1,3,10,30,100", help="rank bucket edges")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0: any free port")
    p.add_argument("--token", help="the review token (default: $RECALLWATCH_REVIEW_TOKEN or new)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=run)


def review_app(
    mined_path: Path,
    corpus_dir: Path,
    labels_path: Path,
    audit: AuditConfig,
    *,
    token: str | None = None,
    options: ImportOptions | None = None,
    store_dir: Path,
) -> tuple[FastAPI, Store, ReviewSettings, str]:
    """The one-shot review app over one mined set: (app, store, settings, the set's key).

    Labels live in a scratch store under ``store_dir``; the label file is read into it first
    and rewritten after every change.
    """
    corpus = load_corpus(corpus_dir)
    mined = read_mined(mined_path, corpus, options)
    plan = plan_review(mined, corpus, audit)
    rs = file_set(mined_path, corpus_dir)
    store = Store.open(store_dir / "review.db")
    if labels_path.is_file():
        store.reviews.record_many(
            [
                ReviewRow(
                    rs.key,
                    lab.query_id,
                    lab.doc_id,
                    lab.label,
                    lab.reviewer or "anonymous",
                    (lab.time.astimezone(UTC).timestamp() if lab.time else 0.0),
                )
                for lab in read_labels(labels_path)
            ]
        )
    ranks = {(i.query_id, i.doc_id): i.rank for i in plan.items}

    def save(key: str) -> None:
        write_review_labels(labels_path, review_labels(store, key), ranks)

    settings = ReviewSettings.with_token(token, audit=audit, on_change=save)
    sets = ReviewSets(settings, lambda: [rs])
    sets.preload(rs.key, plan)
    app = FastAPI(title="recallwatch review", docs_url=None, redoc_url=None)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    mount(app, store, WebSettings())
    enable_review(app, sets)
    save(rs.key)  # the file exists (and is complete) from the start
    return app, store, settings, rs.key


def run(args: argparse.Namespace) -> int:
    """Serve the review page until interrupted."""
    from recallwatch.server import HttpServer

    audit = AuditConfig(
        sample_size=args.sample,
        seed=args.seed,
        sampling=args.sampling,
        buckets=RankBuckets.parse(args.buckets),
        control_size=0,
    )
    options = ImportOptions(
        format=args.format,
        anchor_column=args.anchor_column,
        positive_column=args.positive_column,
        rank_offset=args.rank_offset,
        positives_per_query=args.positives_per_query,
        allow_unmatched=args.allow_unmatched,
    )
    with tempfile.TemporaryDirectory(prefix="recallwatch-review-") as tmp:
        app, store, settings, key = review_app(
            args.mined,
            args.corpus,
            args.labels,
            audit,
            token=args.token,
            options=options,
            store_dir=Path(tmp),
        )
        server = HttpServer(app, args.host, args.port)
        server.start()
        url = f"{server.url}/review/{key}"
        print(f"review page: {url}#token={settings.token}", flush=True)
        if settings.generated:
            print(f"review token (shown once): {settings.token}", flush=True)
        print(f"labels are written to {args.labels}; Ctrl-C stops", flush=True)
        if not args.no_browser:
            webbrowser.open(f"{url}#token={settings.token}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            # A timed wait: the kernel may deliver the signal to the server's thread, and an
            # untimed wait in the main thread would then never see it.
            while not stop.wait(0.5):
                pass
            print("stopped", file=sys.stderr)
        finally:
            server.stop()
            store.close()
    return 0
