"""Review labels drive the daemon: each mined set's estimate follows the labels of ``/review``.

With ``review`` in ``false_negatives.oracles`` (``mining.oracles.review``), every label or undo
on ``/review/KEY`` calls ``ReviewFeed.changed(KEY)`` (KEY is the mined set's mining fingerprint).
Changes are debounced: the first change of a set is due ``debounce_seconds`` later on the
injected clock, and the labels are read when it is due, so a burst of labels is one re-estimate.
``refresh`` then

1. estimates the set from its labels with the review page's estimator (``mining.review.
   live_estimate``: the same rates, interval and SPRT the page shows);
2. chooses the set's estimate (``choose_estimate``, pure): the people's when ``review`` is the
   only oracle. Beside a judge whose audit stored its label of every pair of the review sample
   (``details.judged_sample``), the prediction-powered estimate (PPI++: the judge's labels of
   the whole sample corrected by its errors on the people's part, ``daemon.review_ppi``) from
   the first 2 labelled pairs on, with the judge-only / people-only / PPI trio, the judge's
   agreement with people and the SPRT in its details; the judge's while nobody has labelled;
   where PPI cannot be computed (too few pairs both labelled, a census of people's labels) the
   people's once decisive (the SPRT decided, or the whole sample is labelled), else the judge's.
   Without the judge's labels per pair (an audit from before them, or one that drew another
   sample) only that last rule applies;
3. when that differs from the set's current estimate, stores it as a NEW estimate (source
   ``ppi``, ``review``, or ``audit`` when the judges' one comes back) for every evaluated
   checkpoint trained on the set: the earlier estimates stay in the history;
4. hands each run's newest evaluated checkpoint of the set to ``on_estimate`` (the alert
   decision: ``FalseNegativeRateHigh`` opens or resolves without a restart). The exporter and the
   pages read the store, so ``/metrics`` and the pages follow at their next read.

At start every set with labels is due at once: labels stored while the daemon was down (or put
back from the mirror) are used. A set audited before its first label picks up later labels the
same way. ``start`` runs the due work in a thread of its own; tests drive ``run_due`` with a
``ManualClock`` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recallwatch.config import FalseNegativeConfig
from recallwatch.daemon.review_ppi import PPI_SOURCE, combine, ppi_estimate, with_people
from recallwatch.logs import fields
from recallwatch.mining.oracles.labels import ReviewLabel
from recallwatch.mining.oracles.review import REVIEW_SPEC, judges_besides_review
from recallwatch.mining.people import PeopleAndJudge
from recallwatch.mining.review import LiveEstimate, ReviewPlan, live_estimate
from recallwatch.store import STATES, CheckpointRow, FnBucket, FnEstimate, Store
from recallwatch.store.reviews import ReviewRow

__all__ = [
    "DECISIVE",
    "PPI_SOURCE",
    "REVIEW_DEBOUNCE_SECONDS",
    "REVIEW_SOURCE",
    "ReviewFeed",
    "SetPlans",
    "choose_estimate",
    "review_estimate",
    "reviewing",
]

log = logging.getLogger("recallwatch.daemon")

#: How long after a set's first label change its estimate is re-computed.
REVIEW_DEBOUNCE_SECONDS = 2.0
#: How long a set whose re-estimate failed waits before it is tried again (a label sooner).
REVIEW_RETRY_SECONDS = 60.0
#: The ``source`` of an estimate made from people's labels alone (``PPI_SOURCE``: with a judge's).
REVIEW_SOURCE = "review"
#: SPRT decisions that make people's labels decisive beside a judge.
DECISIVE = ("too_high", "acceptable")


def reviewing(config: FalseNegativeConfig | None) -> bool:
    """Whether the audit's oracles include the reviewed labels (``review``)."""
    return config is not None and REVIEW_SPEC in config.oracles


def _label(row: ReviewRow) -> ReviewLabel:
    return ReviewLabel(
        row.query_id,
        row.doc_id,
        row.label,  # type: ignore[arg-type]
        row.reviewer,
        datetime.fromtimestamp(row.labelled_at, UTC),
    )


def review_estimate(live: LiveEstimate, labels: list[ReviewLabel], planned: int) -> FnEstimate:
    """The stored form of the people's estimate; ``[0, 1]`` while no label judges anything."""
    rates, best = live.rates, live.rates.best
    counts = {v: sum(lab.label == v for lab in labels) for v in ("relevant", "not_relevant")}
    counts["unsure"] = sum(lab.label == "unsure" for lab in labels)
    details: dict[str, Any] = {
        "source": REVIEW_SOURCE,
        "human_labels": {
            "labels": len(labels),
            "labelled_items": live.labelled,
            "planned": planned,
            **counts,
            "reviewers": sorted({lab.reviewer or "" for lab in labels}),
        },
        "sprt": dict(live.sprt),
        "sprt_status": live.status,
        "rates": rates.as_dict(),
    }
    return FnEstimate(
        oracle=REVIEW_SPEC,
        sample_size=rates.judged,
        false_negatives=rates.false_negatives,
        estimate=0.0 if best is None else best.estimate,
        lower=0.0 if best is None else best.lower,
        upper=1.0 if best is None else best.upper,
        buckets=tuple(
            FnBucket(
                b.label, b.judged, b.false_negatives, b.rate.estimate, b.rate.lower, b.rate.upper
            )
            for b in rates.buckets
            if b.rate is not None
        ),
        details=details,
        source=REVIEW_SOURCE,
    )


def choose_estimate(
    people: FnEstimate,
    live: LiveEstimate,
    planned: int,
    judge: FnEstimate | None,
    *,
    alone: bool,
    both: PeopleAndJudge | None = None,
) -> FnEstimate | None:
    """The set's estimate from the people's (``people``, ``live``) and the judges' (``judge``).

    - ``alone`` (``review`` is the only oracle): the people's.
    - ``both`` (the judge's labels of the whole review sample are known, ``review_ppi.combine``):
      the prediction-powered estimate when it can be computed (source ``ppi``); the judge's
      while people have labelled nothing; else the people's once decisive (the SPRT decided, or
      the whole sample is labelled), else the judge's. The people's carries the trio and the
      agreement in its details, ``used`` naming it.
    - otherwise (no judge's labels per pair): the people's once decisive, else the judge's.
    """
    decisive = (
        live.labelled > 0
        and people.sample_size > 0
        and (live.sprt.get("decision") in DECISIVE or live.labelled >= planned)
    )
    if alone:
        return people
    if both is not None and judge is not None and both.used != "judge":
        if both.used == "ppi":
            return ppi_estimate(both, judge, people)
        if decisive:
            why = (
                "every sampled negative labelled by people: their labels alone"
                if live.labelled >= planned
                else f"too few pairs labelled by both for a prediction-powered estimate, and "
                f"the SPRT over the people's labels has decided ({live.status}): their labels "
                "alone"
            )
            return with_people(people, both, judge, used="people", why=why)
        return judge
    if decisive:
        return people
    return judge


def _key(e: FnEstimate) -> tuple[Any, ...]:
    return (
        e.source,
        e.sample_size,
        e.false_negatives,
        e.estimate,
        e.lower,
        e.upper,
        e.details.get("human_labels"),
    )


def _same(a: FnEstimate | None, b: FnEstimate) -> bool:
    return a is not None and _key(a) == _key(b)


class ReviewFeed:
    """Re-estimate a mined set from its review labels as they change (debounced)."""

    def __init__(
        self,
        config: FalseNegativeConfig,
        store: Store,
        config_hash: str,
        plans: Callable[[str], ReviewPlan | None],
        *,
        clock: Callable[[], float] = time.time,
        debounce_seconds: float = REVIEW_DEBOUNCE_SECONDS,
        on_estimate: Callable[[CheckpointRow], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.config_hash = config_hash
        #: The review plan (seeded sample) of a set by its key; None when it cannot be read.
        self.plans = plans
        self.clock = clock
        self.debounce_seconds = debounce_seconds
        self.on_estimate = on_estimate
        #: Whether the people's labels are the only oracle.
        self.alone = not judges_besides_review(list(config.oracles))
        #: Re-estimates that failed since the start (``/readyz`` ``handled``, a counter).
        self.failures = 0
        self._due: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- when ---------------------------------------------------------------------------------

    def changed(self, key: str, *, now: bool = False) -> None:
        """A label of set ``key`` changed: re-estimate it after the debounce (``now``: at once)."""
        with self._cond:
            due = self.clock() + (0.0 if now else self.debounce_seconds)
            self._due[key] = min(self._due.get(key, due), due)
            self._cond.notify_all()

    def pending(self) -> dict[str, float]:
        """Sets waiting to be re-estimated, with when each is due."""
        with self._cond:
            return dict(self._due)

    def run_due(self) -> list[str]:
        """Re-estimate every set that is due now; the keys done."""
        with self._cond:
            t = self.clock()
            keys = [k for k, due in self._due.items() if due <= t]
            for k in keys:
                del self._due[k]
        for key in keys:
            try:
                self.refresh(key)
            except Exception:  # one set's failure must not stop the feed: counted, retried
                with self._cond:
                    self.failures += 1
                    retry = self.clock() + REVIEW_RETRY_SECONDS
                    self._due[key] = min(self._due.get(key, retry), retry)
                log.exception(
                    "re-estimating a mined set from its review labels failed; retried in %.0f s "
                    "or at its next label",
                    REVIEW_RETRY_SECONDS,
                    extra=fields(mined_set=key),
                )
        return keys

    def catch_up(self) -> None:
        """Make every set with labels due now (labels stored while the daemon was down)."""
        for summary in self.store.reviews.sets():
            self.changed(summary.mined_set, now=True)

    # -- what ---------------------------------------------------------------------------------

    def estimate(self, key: str) -> FnEstimate | None:
        """The set's estimate from its labels and its judges' audit (None: nothing to store)."""
        plan = self.plans(key)
        if plan is None:
            return None
        labels = [_label(r) for r in self.store.reviews.labels(key)]
        live = live_estimate(plan, labels)
        planned = len(plan.items)
        people = review_estimate(live, labels, planned)
        judge = self.store.results.fn_audit_estimate_for(key, self.config_hash)
        both = None if self.alone else combine(plan, labels, judge)
        return choose_estimate(people, live, planned, judge, alone=self.alone, both=both)

    def refresh(self, key: str) -> FnEstimate | None:
        """Store the set's new estimate on its checkpoints and decide their alerts again."""
        rows = self.store.queue.checkpoints_of_mining(key)
        if not rows:
            return None
        current = self.store.results.fn_estimate_for(key, self.config_hash)
        chosen = self.estimate(key)
        if chosen is None or _same(current, chosen):
            return current
        if current is None and chosen.sample_size == 0:
            return None  # no label judges anything yet, and nothing to take back
        now = self.clock()
        for row in rows:
            self.store.results.record_fn_estimate(
                row.id, key, self.config_hash, chosen, now, keep_history=True
            )
        human = chosen.details.get("human_labels", {})
        people = chosen.details.get("people")
        log.info(
            "false-negative estimate re-computed from review labels",
            extra=fields(
                mined_set=key,
                source=chosen.source,
                false_negative_ratio=round(chosen.estimate, 4),
                lower=round(chosen.lower, 4),
                upper=round(chosen.upper, 4),
                judged=chosen.sample_size,
                labels=human.get("labels") if isinstance(human, dict) else None,
                sprt=chosen.details.get("sprt_status"),
                used=people.get("used") if isinstance(people, dict) else None,
                checkpoints=len(rows),
            ),
        )
        if self.on_estimate is not None:
            for run in sorted({r.run for r in rows}):
                latest = self.store.views.latest_evaluated(run)
                if latest is not None and latest.mining_fingerprint == key:
                    self.on_estimate(latest)
        return chosen

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run due re-estimates in a background thread until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="review-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a re-estimate in progress finishes first)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._due:
                        wait = min(self._due.values()) - self.clock()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
            self.run_due()


class SetPlans:
    """The review plan of each mined set by its key, read once (the daemon's own; ``serve``
    passes the ``/review`` pages' plans instead, so both draw the sample once)."""

    def __init__(self, config: FalseNegativeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._plans: dict[str, ReviewPlan] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> ReviewPlan | None:
        """The plan of the set with this mining fingerprint; None when no run names it."""
        from recallwatch.mining.corpus import load_corpus
        from recallwatch.mining.formats import read_mined
        from recallwatch.mining.review import plan_review

        with self._lock:
            if key in self._plans:
                return self._plans[key]
            rows = self.store.queue.checkpoints_of_mining(key, states=STATES)
            content = self.store.queue.mining_content(key)
            name = content.get(self.config.mined_set_key) if isinstance(content, dict) else None
            runs = {r.name: r.directory for r in self.store.views.runs()}
            if not rows or not isinstance(name, str) or rows[0].run not in runs:
                return None
            corpus = load_corpus(self.config.corpus)
            mined = read_mined(Path(runs[rows[0].run]) / name, corpus)
            self._plans[key] = plan_review(mined, corpus, self.config.audit_config())
            return self._plans[key]
