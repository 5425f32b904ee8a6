"""How a judge URL is shown: credentials (userinfo, query string) replaced by ``***``.

Used wherever an oracle spec is shown or stored (the http oracle, the error that lists the oracle
kinds, the config, the daemon's audit log).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

__all__ = ["REDACTED", "redact_url", "split_url", "url_secrets"]

REDACTED = "***"


def split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None for a URL it cannot parse."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """``url`` safe to show: userinfo (``user:pass@``) and the query string become ``***``.

    ``https://u:p@judge:8080/v1?token=abc#x`` -> ``https://***@judge:8080/v1?***``; the fragment
    is dropped. A URL that cannot be parsed is replaced whole.
    """
    parts = split_url(url)
    if parts is None:
        return f"<unparseable URL {REDACTED}>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = REDACTED if parts.query else ""
    shown = SplitResult(parts.scheme, netloc, parts.path, query, "").geturl()
    # A malformed spec (e.g. a URL nested in another prefix) can hide userinfo or a query
    # where urlsplit does not look: scrub any that remain.
    shown = re.sub(r"(?<=//)[^/\s@]*@", f"{REDACTED}@", shown)
    return re.sub(r"\?(?!\*\*\*$)[^\s'\"]*", f"?{REDACTED}", shown)


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that ``redact_url`` hides, to scrub them from other text."""
    parts = split_url(url)
    if parts is None:
        return [url]
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo, *userinfo.split(":", 1)]
    if parts.query:
        found += [
            parts.query,
            *(v for _, _, v in (kv.partition("=") for kv in parts.query.split("&"))),
        ]
    return [f for f in found if f]
