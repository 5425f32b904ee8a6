"""Links of an alert: the Grafana dashboard and the daemon's pages for its run and checkpoint."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["links_for"]


def links_for(
    *, dashboard_url: str | None, api_url: str | None, run: str, checkpoint: str | None, alert: str
) -> dict[str, str]:
    """Links to the Grafana dashboard and to the daemon's web pages for an alert.

    ``alert`` and ``evaluation`` are the pages ``/alerts/ID`` and ``/runs/RUN/checkpoints/CKPT``
    (each links its JSON in ``/api/v1``), under ``api_url``, the daemon's base URL.
    """
    links: dict[str, str] = {}
    if dashboard_url:
        sep = "&" if "?" in dashboard_url else "?"
        links["dashboard"] = f"{dashboard_url}{sep}var-run={quote(run, safe='')}"
    if api_url:
        base = api_url.rstrip("/")
        links["alert"] = f"{base}/alerts/{quote(alert, safe='')}"
        if checkpoint:
            links["evaluation"] = (
                f"{base}/runs/{quote(run, safe='')}/checkpoints/{quote(checkpoint, safe='')}"
            )
    return links
