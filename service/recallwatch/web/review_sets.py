"""Which mined sets can be reviewed, and their review plans (loaded once, then cached).

- In the daemon (``daemon_sets``): every mined set a run's checkpoints name in their mining
  metadata (``false_negatives.mined_set_key``), keyed by its mining fingerprint, read with the
  ``false_negatives.corpus`` directory.
- The held-out queues (``holes_sets``): each hole audit's displacing documents, written by the
  daemon to ``<store dir>/holes/`` (``alerting.holes.write_review_queue``), read with the held-out
  set's directory as the corpus (docs/holes.md).
- For ``recallwatch review`` (``file_set``): the one given file, keyed by a hash of its path.

``ReviewSettings`` says how the sample is drawn (the seeded sample ``fn-rate`` draws with the
same ``--seed`` and ``--sample``), the write token, and what to do after each change (the
one-shot command rewrites its label file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recallwatch.alerting.holes import QUEUE_PREFIX, queue_dir
from recallwatch.mining.audit import AuditConfig
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.review import ReviewPlan, plan_review
from recallwatch.store import Store
from recallwatch.store.maintenance import review_mirror
from recallwatch.web.review_mirror import Reconciled, reconcile_mirror, write_mirror
from recallwatch.web.review_words import ReviewKind

if TYPE_CHECKING:
    from recallwatch.config import Config

__all__ = [
    "TOKEN_ENV",
    "ReviewSet",
    "ReviewSets",
    "ReviewSettings",
    "daemon_sets",
    "file_set",
    "holes_sets",
]

#: The environment variable that configures the review write token (else one is generated).
TOKEN_ENV = "RECALLWATCH_REVIEW_TOKEN"


@dataclass(frozen=True)
class ReviewSet:
    """A set that can be reviewed: a mined set, or a held-out holes queue (``kind``)."""

    key: str
    title: str
    mined: Path
    corpus: Path | None
    run: str | None = None
    #: ``mined`` (sampled mined negatives) or ``holes`` (a hole audit's displacing documents):
    #: what the page calls its items and its estimate (``web.review_words``).
    kind: ReviewKind = "mined"


@dataclass
class ReviewSettings:
    """How the review pages sample and who may write."""

    #: Writes need it in the ``X-Review-Token`` header.
    token: str
    audit: AuditConfig = field(default_factory=lambda: AuditConfig(sample_size=400))
    #: The daemon's corpus and mining-metadata key (None: only ``file`` sets).
    corpus: Path | None = None
    mined_set_key: str = "mined_set"
    #: Called with the set's key after each label or undo (the one-shot command's CSV).
    on_change: Callable[[str], None] | None = None
    #: Whether the token was generated (and must be shown once).
    generated: bool = False

    @classmethod
    def with_token(
        cls,
        token: str | None = None,
        *,
        audit: AuditConfig | None = None,
        corpus: Path | None = None,
        mined_set_key: str = "mined_set",
        on_change: Callable[[str], None] | None = None,
    ) -> ReviewSettings:
        """Settings with the given token, ``$RECALLWATCH_REVIEW_TOKEN``, or a generated one."""
        given = token or os.environ.get(TOKEN_ENV, "").strip() or None
        return cls(
            token=given or secrets.token_urlsafe(24),
            audit=audit or AuditConfig(sample_size=400),
            corpus=corpus,
            mined_set_key=mined_set_key,
            on_change=on_change,
            generated=given is None,
        )

    @classmethod
    def from_config(cls, config: Config) -> ReviewSettings:
        """The daemon's settings: its false-negative audit's corpus, key and sampling."""
        fn = config.false_negatives
        if fn is None:
            return cls.with_token()
        return cls.with_token(
            audit=fn.audit_config(), corpus=Path(fn.corpus), mined_set_key=fn.mined_set_key
        )


def file_key(path: Path) -> str:
    """The key of a mined set given as a file."""
    return "file-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def file_set(mined: Path, corpus: Path | None) -> ReviewSet:
    """The one set of ``recallwatch review``."""
    return ReviewSet(file_key(mined), mined.name, mined, corpus)


def daemon_sets(store: Store, settings: ReviewSettings) -> list[ReviewSet]:
    """Every mined set named by the mining metadata of a watched run's checkpoints."""
    out: dict[str, ReviewSet] = {}
    for run in store.views.runs():
        for row in store.queue.checkpoints(run.name, newest_first=True):
            fp = row.mining_fingerprint
            if fp is None or fp in out:
                continue
            content = store.queue.mining_content(fp)
            name = content.get(settings.mined_set_key) if isinstance(content, dict) else None
            if isinstance(name, str) and name:
                path = Path(run.directory) / name
                out[fp] = ReviewSet(fp, f"{run.name}: {name}", path, settings.corpus, run.name)
    return list(out.values())


def holes_sets(store: Store, heldouts: dict[str, Path]) -> list[ReviewSet]:
    """The held-out review queues: one per hole audit written under ``<store dir>/holes/``
    (``<dataset>--<run>--<checkpoint>.jsonl``), for held-out sets still configured."""
    folder = queue_dir(store.path)
    out = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        dataset, _, rest = path.stem.partition("--")
        run = rest.partition("--")[0] or None
        if dataset in heldouts:
            title = f"held-out holes: {path.stem.replace('--', ' / ')}"
            key = QUEUE_PREFIX + path.stem
            out.append(ReviewSet(key, title, path, heldouts[dataset], run, kind="holes"))
    return out


class ReviewSets:
    """The sets on offer and their plans (drawn once per set; thread-safe)."""

    def __init__(self, settings: ReviewSettings, listing: Callable[[], list[ReviewSet]]) -> None:
        self.settings = settings
        self._listing = listing
        self._plans: dict[str, ReviewPlan] = {}
        self._lock = threading.Lock()

    def all(self) -> list[ReviewSet]:
        """The sets on offer now."""
        return self._listing()

    def get(self, key: str) -> ReviewSet | None:
        """The set with this key, if on offer."""
        return next((s for s in self.all() if s.key == key), None)

    def preload(self, key: str, plan: ReviewPlan) -> None:
        """Use this plan for the set ``key`` (a mined set read with import options)."""
        with self._lock:
            self._plans[key] = plan

    def plan(self, rs: ReviewSet) -> ReviewPlan:
        """The set's review plan (its seeded sample), read and drawn on first use."""
        with self._lock:
            if rs.key not in self._plans:
                corpus = None if rs.corpus is None else load_corpus(rs.corpus)
                mined = read_mined(rs.mined, corpus)
                self._plans[rs.key] = plan_review(mined, corpus, self.settings.audit)
            return self._plans[rs.key]


def daemon_review(
    store: Store, config: Config, *, on_reconciled: Callable[[Reconciled], None] | None = None
) -> ReviewSets:
    """The daemon's review: its mined sets, labels mirrored to ``<store dir>/reviews/KEY.csv``.

    That file is what a ``labels:`` oracle of the ``false_negatives`` section reads (its
    ``sample`` column makes it a seeded-sample review). At start the mirror and the store are
    reconciled first, the newest event winning (``web.review_mirror``); ``on_reconciled`` gets
    what that did. A generated token is logged once.
    """
    settings = ReviewSettings.from_config(config)
    heldouts = {h.dataset: Path(h.path) for h in config.heldout}
    sets = ReviewSets(settings, lambda: daemon_sets(store, settings) + holes_sets(store, heldouts))
    folder = review_mirror(store.path)
    reconciled = reconcile_mirror(store, folder)
    if on_reconciled is not None:
        on_reconciled(reconciled)

    def mirror(key: str) -> None:
        rs = sets.get(key)
        ranks = {} if rs is None else {(i.query_id, i.doc_id): i.rank for i in sets.plan(rs).items}
        write_mirror(store, folder, key, ranks)

    settings.on_change = mirror
    if settings.generated:
        logging.getLogger("recallwatch.daemon").warning(
            "review token (shown once; set %s to choose it): %s", TOKEN_ENV, settings.token
        )
    return sets
