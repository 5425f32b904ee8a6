"""What every page handler gets: the store, the settings and the held-out texts, once authorized.

A page declares ``web: Reader`` as a parameter; FastAPI runs ``reader`` first, which checks the
read token (``auth.authorize``) and returns the ``WebContext`` that ``mount`` stored on the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from recallwatch.heldout.texts import TextIndex
from recallwatch.store import Store
from recallwatch.views.rescored import QrelsSource, Rescorer
from recallwatch.web.auth import authorize

if TYPE_CHECKING:
    from recallwatch.config import Config

__all__ = ["Reader", "WebContext", "WebSettings", "reader"]


@dataclass(frozen=True)
class WebSettings:
    """How the pages are served: the read tokens and where the held-out texts are."""

    #: The read token (``http.web_token_env``/``_file``) of the pages and the API; None: open.
    token: str | None = None
    #: The bearer token of ``/metrics`` (``http.metrics_token_env``/``_file``); None: open.
    metrics_token: str | None = None
    #: Held-out set name (the ``dataset`` label) -> its directory, for query texts and titles.
    heldouts: Mapping[str, Path] = field(default_factory=dict)
    #: Held-out set name -> (split, relevance level) of its qrels, for re-scoring under a qrels
    #: overlay version (a set missing here: the split ``test``, level 1).
    qrels: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    def qrels_sources(self) -> dict[str, QrelsSource]:
        """Where each held-out set's qrels are (what the pages re-score with)."""
        return {
            d: QrelsSource(p, *self.qrels.get(d, ("test", 1))) for d, p in self.heldouts.items()
        }

    @classmethod
    def from_config(cls, config: Config) -> WebSettings:
        """The settings a daemon serves its pages with."""
        return cls(
            token=config.http.web_token(),
            metrics_token=config.http.metrics_token(),
            heldouts={h.dataset: h.path for h in config.heldout},
            qrels={h.dataset: (h.split, h.relevance_level) for h in config.heldout},
        )


@dataclass
class WebContext:
    """The store and settings pages read; one per app."""

    store: Store
    settings: WebSettings
    texts: TextIndex = field(default_factory=TextIndex)
    #: Re-scores stored evaluations under the latest qrels overlay version (cached).
    rescorer: Rescorer | None = None

    def __post_init__(self) -> None:
        if self.rescorer is None:
            self.rescorer = Rescorer(self.store, self.settings.qrels_sources())


#: Where ``mount`` keeps the context on ``app.state``.
STATE_KEY = "recallwatch_web"


def reader(request: Request) -> WebContext:
    """The page dependency: authorize the request (read token), then hand out the context."""
    web: WebContext = getattr(request.app.state, STATE_KEY)
    authorize(request, web.settings.token)
    return web


#: The parameter type of a page handler: ``def page(request: Request, web: Reader)``.
Reader = Annotated[WebContext, Depends(reader)]
