"""``/review``: label sampled mined negatives in the browser, with a live estimate; or the
displacing documents of a held-out holes queue (docs/holes.md), in the same page with its words.

- ``GET /review``: the mined sets and held-out queues on offer and how far each review is;
- ``GET /review/{key}``: the page (server-rendered shell; ``static/review.js`` drives it);
- ``GET /review/{key}/state?reviewer=NAME``: the JSON the page shows (the review API): the set's
  ``kind`` (``mined`` or ``holes``: what the page calls things, ``web.review_words``), the
  reviewer's next item in the seeded sample order, progress, the live estimate per rank bucket
  with the SPRT status (a holes queue has no SPRT: ``n/a``), and the reviewers' agreement;
- ``POST /review/{key}/label`` and ``/undo``: write a label / take the reviewer's last one back;
- ``GET /review/{key}/labels.csv`` / ``labels.jsonl``: the labels, for ``--oracle labels:``.

Writes need the review token in the ``X-Review-Token`` header (a header a cross-site form cannot
send), an ``Origin`` of this server (``auth.same_origin``) and a bounded form body
(``auth.read_form``); a refused write stores nothing. Pages also need the read token when one is
configured (``Reader``). Every text reaches the page as JSON and is inserted as text, never as
HTML. ``enable_review`` puts the sets and settings on the app (the daemon and the one-shot
command each call it once).
"""

from __future__ import annotations

import hmac
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from recallwatch.mining.review import ReviewPlan, agreement, live_estimate, write_review_labels
from recallwatch.store import Store
from recallwatch.store.reviews import LABEL_VALUES, ReviewRow
from recallwatch.views.reviews import review_audit, review_labels
from recallwatch.web.auth import read_form, same_origin
from recallwatch.web.charts import fn_curve_figure
from recallwatch.web.context import Reader
from recallwatch.web.review_sets import ReviewSet, ReviewSets
from recallwatch.web.review_words import HOLES_NOTE, KINDS, for_script, words_of
from recallwatch.web.templates import NAV, render

__all__ = ["STATE_KEY", "enable_review", "router"]

STATE_KEY = "recallwatch_review"
MAX_NAME = 64
MAX_ID = 512
router = APIRouter()
if ("Review", "/review") not in NAV:
    NAV.insert(max(len(NAV) - 1, 0), ("Review", "/review"))


def enable_review(app: FastAPI, sets: ReviewSets) -> None:
    """Serve ``/review`` over these sets (without it the page says review is not set up)."""
    setattr(app.state, STATE_KEY, sets)


def _sets(request: Request) -> ReviewSets | None:
    return getattr(request.app.state, STATE_KEY, None)


def _set_or_404(request: Request, key: str) -> tuple[ReviewSets, ReviewSet]:
    sets = _sets(request)
    rs = None if sets is None else sets.get(key)
    if sets is None or rs is None:
        raise HTTPException(status_code=404, detail=f"no mined set or held-out queue {key!r}")
    return sets, rs


def _state(store: Store, plan: ReviewPlan, rs: ReviewSet, reviewer: str) -> dict[str, Any]:
    key = rs.key
    labels = review_labels(store, key)
    mine = {(lab.query_id, lab.doc_id) for lab in labels if lab.reviewer == reviewer}
    position = next((i.position for i in plan.items if (i.query_id, i.doc_id) not in mine), None)
    done = sum((i.query_id, i.doc_id) in mine for i in plan.items)
    estimate = live_estimate(plan, labels).as_dict()
    if rs.kind == "holes":
        # The SPRT tests a mined set's false-negative rate against its target; a held-out
        # queue's relevant share has none (the audit wants every displacing document judged).
        estimate["sprt"] = {"decision": None, "note": HOLES_NOTE}
        estimate["status"] = f"n/a: {HOLES_NOTE}"
    return {
        "key": key,
        "kind": rs.kind,
        "reviewer": reviewer,
        "item": None if position is None or not reviewer else plan.view(position),
        "progress": {"done": done, "total": len(plan.items)},
        "estimate": estimate,
        "agreement": agreement(labels).as_dict(),
        "sample": {
            "size": len(plan.items),
            "seed": plan.config.seed,
            "sampling": plan.config.sampling,
        },
    }


def _reviewer(value: str | None) -> str:
    name = (value or "").strip()
    if len(name) > MAX_NAME:
        raise HTTPException(status_code=422, detail=f"reviewer name over {MAX_NAME} characters")
    return name


@router.get("/review", response_class=HTMLResponse)
def review_index(request: Request, web: Reader) -> Response:
    """The mined sets on offer (straight to the set when there is only one)."""
    sets = _sets(request)
    listed = [] if sets is None else sets.all()
    if len(listed) == 1:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(f"{root}/review/{listed[0].key}", status_code=303)
    progress = {s.mined_set: s for s in web.store.reviews.sets()}
    return render(
        request,
        "review_index.html",
        title="Review",
        enabled=sets is not None,
        sets=[(s, progress.get(s.key), KINDS[s.kind]) for s in listed],
    )


@router.get("/review/{key}", response_class=HTMLResponse)
def review_page(request: Request, key: str, web: Reader) -> HTMLResponse:
    """The review page of one set; ``review.js`` fetches its state and writes labels."""
    _, rs = _set_or_404(request, key)
    # The daemon's false-negative audit of a mined set (a held-out queue has none).
    audit = review_audit(web.store, rs.run, rs.key) if rs.kind == "mined" else None
    details = {} if audit is None else dict(audit.details)
    curve, people = details.get("curve"), details.get("people")
    return render(
        request,
        "review.html",
        title=f"Review {rs.title}",
        rs=rs,
        words=words_of(rs.kind),
        audit_oracle=None if audit is None else audit.oracle,
        people=people if isinstance(people, dict) else None,
        curve_chart=fn_curve_figure(curve) if isinstance(curve, dict) else None,
        boot={
            "key": rs.key,
            "title": rs.title,
            "kind": rs.kind,
            "labels": list(LABEL_VALUES),
            "words": for_script(),
        },
    )


@router.get("/review/{key}/state")
def review_state(request: Request, key: str, web: Reader, reviewer: str = "") -> JSONResponse:
    """The review API: next item, progress, live estimate and SPRT status, agreement."""
    sets, rs = _set_or_404(request, key)
    return JSONResponse(_state(web.store, sets.plan(rs), rs, _reviewer(reviewer)))


async def _write_guard(request: Request, sets: ReviewSets) -> dict[str, str]:
    same_origin(request)
    given = request.headers.get("x-review-token", "")
    if not hmac.compare_digest(given.encode(), sets.settings.token.encode()):
        raise HTTPException(status_code=403, detail="the review token is missing or wrong")
    form = await read_form(request)
    return {k: v[0] for k, v in form.items() if v}


@router.post("/review/{key}/label")
async def review_label(request: Request, key: str, web: Reader) -> JSONResponse:
    """Store the reviewer's label of one item of the sample."""
    sets, rs = _set_or_404(request, key)
    form = await _write_guard(request, sets)
    reviewer = _reviewer(form.get("reviewer"))
    label = form.get("label", "")
    qid, did = form.get("query_id", "")[:MAX_ID], form.get("doc_id", "")[:MAX_ID]
    if not reviewer or label not in LABEL_VALUES:
        raise HTTPException(status_code=422, detail="needs a reviewer and a known label")
    plan = sets.plan(rs)
    if not any(i.query_id == qid and i.doc_id == did for i in plan.items):
        raise HTTPException(status_code=422, detail="that pair is not in the review sample")
    web.store.reviews.record(key, qid, did, label, reviewer, datetime.now(UTC).timestamp())
    if sets.settings.on_change is not None:
        sets.settings.on_change(key)
    return JSONResponse(_state(web.store, plan, rs, reviewer))


@router.post("/review/{key}/undo")
async def review_undo(request: Request, key: str, web: Reader) -> JSONResponse:
    """Take back the reviewer's most recent label of this set."""
    sets, rs = _set_or_404(request, key)
    form = await _write_guard(request, sets)
    reviewer = _reviewer(form.get("reviewer"))
    mine = [r for r in web.store.reviews.labels(key) if r.reviewer == reviewer]
    if mine:
        last: ReviewRow = mine[-1]
        web.store.reviews.remove(
            key, last.query_id, last.doc_id, reviewer, datetime.now(UTC).timestamp()
        )
        if sets.settings.on_change is not None:
            sets.settings.on_change(key)
    return JSONResponse(_state(web.store, sets.plan(rs), rs, reviewer))


@router.get("/review/{key}/labels.{fmt}")
def review_export(request: Request, key: str, fmt: str, web: Reader) -> Response:
    """The set's labels as CSV or JSON lines, readable by ``--oracle labels:FILE``."""
    sets, rs = _set_or_404(request, key)
    if fmt not in ("csv", "jsonl"):
        raise HTTPException(status_code=404, detail="labels.csv or labels.jsonl")
    plan = sets.plan(rs)
    ranks = {(i.query_id, i.doc_id): i.rank for i in plan.items}
    with tempfile.TemporaryDirectory() as tmp:
        labels = review_labels(web.store, key)
        body = write_review_labels(Path(tmp) / f"labels.{fmt}", labels, ranks).read_bytes()
    kind = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(
        body,
        media_type=f"{kind}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="labels-{key}.{fmt}"'},
    )
