"""The pages, one module per subject; each has a ``router`` listed in ``ROUTERS``."""

from __future__ import annotations

from fastapi import APIRouter

from recallwatch.web import review
from recallwatch.web.pages import alerts, checkpoints, runs

__all__ = ["ROUTERS"]

#: Every page router ``web.mount`` includes (add a new page module's router here).
ROUTERS: list[APIRouter] = [runs.router, checkpoints.router, alerts.router, review.router]
