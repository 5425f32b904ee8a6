"""The ``http`` oracle: POST batches of (query, document) pairs to a judge endpoint.

Contract (also in docs/fn-rate.md). Request, ``Content-Type: application/json``::

    {"protocol": "recallwatch-judge/1",
     "pairs": [{"id": "0", "query_id": "q1", "doc_id": "d3",
                "query": "query text", "document": "document text",
                "positives": ["text of a labelled positive", ...]}, ...]}

Response, status 200::

    {"results": [{"id": "0", "label": "relevant", "score": 0.93}, ...]}

``label`` is ``relevant`` (a false negative), ``not_relevant`` or ``unsure``; ``score`` is
optional. Every id of the request must be answered once. Connection errors, timeouts, 429 and 5xx
are retried with exponential backoff and jitter; a ``Retry-After`` header (seconds or an HTTP
date) is honoured, capped at 30 s. The arithmetic is the notification delivery's
(``retry``: ``backoff_delay``, ``parse_retry_after``), not a second copy. Other statuses and
malformed answers fail at once. The session, the sleep function, the clock (for HTTP dates) and the
random source of the jitter are injected so tests control them.

Secrets: the URL may carry credentials (``https://user:pass@host/...``, ``?token=...``) and the
headers an ``Authorization`` value. Wherever the endpoint is shown or stored — log messages,
``JudgeError`` messages, ``info.spec`` (which goes into the JSON and the daemon's store) — it is
``redact_url(url)``: userinfo and query string replaced by ``***``; header values and those URL
parts are also scrubbed from anything the endpoint or ``requests`` says. ``resolve_http_headers``
reads header values from environment variables or a file, so they never need to be on a command
line or in a config file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import requests

from recallwatch.errors import ConfigError
from recallwatch.mining.oracles.base import (
    LABELS,
    JudgeError,
    Judgement,
    OracleInfo,
    OracleKind,
    Pair,
    register,
)
from recallwatch.mining.oracles.options import OracleOptions
from recallwatch.mining.oracles.redaction import REDACTED, redact_url, split_url, url_secrets
from recallwatch.retry import RetryPolicy, backoff_delay, parse_retry_after

__all__ = ["PROTOCOL", "HttpJudge", "HttpOracle", "resolve_http_headers"]

log = logging.getLogger(__name__)
PROTOCOL = "recallwatch-judge/1"
_RETRY_STATUS = {429, 500, 502, 503, 504}
_MAX_RETRY_AFTER = 30.0


def _check_header(name: str, value: str, where: str) -> None:
    if not name or any(c in name for c in ":\r\n ") or any(c in value for c in "\r\n"):
        raise ConfigError(
            [(where, f"header {name!r}: a name without ':' or spaces and a one-line value needed")]
        )
    if not value:
        raise ConfigError([(where, f"header {name!r} would be empty")])


def resolve_http_headers(
    *,
    auth_env: str | None = None,
    auth_file: Path | str | None = None,
    header_env: Iterable[str] = (),
    environ: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers for the judge endpoint, with values that never appear on a command line.

    - ``auth_env``: the name of an environment variable holding the ``Authorization`` value
      (e.g. ``Bearer abc...``);
    - ``auth_file``: a file holding it (surrounding whitespace stripped);
    - ``header_env``: ``NAME=ENVVAR`` items, header ``NAME`` from variable ``ENVVAR``.

    Errors name the variable or the file, never the value.
    """
    env = os.environ if environ is None else environ
    headers: dict[str, str] = {}

    def from_env(var: str, where: str) -> str:
        value = env.get(var)
        if value is None or not value.strip():
            raise ConfigError([(where, f"environment variable {var!r} is not set or empty")])
        return value.strip()

    if auth_env is not None and auth_file is not None:
        raise ConfigError(
            [("--http-auth-env", "give --http-auth-env or --http-auth-file, not both")]
        )
    if auth_env is not None:
        headers["Authorization"] = from_env(auth_env, "--http-auth-env")
    if auth_file is not None:
        try:
            headers["Authorization"] = Path(auth_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [("--http-auth-file", f"cannot read {auth_file}: {type(exc).__name__}")]
            ) from None
    for item in header_env:
        name, sep, var = item.partition("=")
        name, var = name.strip(), var.strip()
        if not sep or not name or not var:
            raise ConfigError([("--http-header-env", f"expected NAME=ENVVAR, got {item!r}")])
        headers[name] = from_env(var, "--http-header-env")
    for name, value in headers.items():
        where = (
            "--http-auth-env/--http-auth-file" if name == "Authorization" else "--http-header-env"
        )
        _check_header(name, value, where)
    return headers


class HttpOracle:
    """A judge behind an HTTP endpoint."""

    needs_text = True
    judges_whole_queries = True

    def __init__(
        self,
        url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        batch_size: int = 32,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        jitter: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"the judge URL must start with http:// or https://, got {redact_url(url)!r}"
            )
        if batch_size < 1 or retries < 0:
            raise ValueError("batch_size must be positive and retries non-negative")
        self.url = url
        if any(k.lower() == "authorization" for k in headers or {}):
            # requests turns URL userinfo into Basic auth that overrides an explicit header.
            url_parts = split_url(url)
            if url_parts is not None and "@" in url_parts.netloc:
                host = url_parts.netloc.rpartition("@")[2]
                self.url = url_parts._replace(netloc=host).geturl()
        #: The endpoint as shown in messages and stored in ``info.spec``: no credentials.
        self.shown_url = redact_url(url)
        self.session = session or requests.Session()
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        #: Backoff ``backoff * 2**attempt`` with ``jitter`` of it random; Retry-After up to 30 s.
        self.policy = RetryPolicy(
            base=backoff,
            factor=2.0,
            cap=backoff * 2.0 ** max(retries, 0),
            jitter=jitter,
            max_retry_after=_MAX_RETRY_AFTER,
        )
        self.clock = clock
        self.rng = rng
        self.batch_size = batch_size
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.sleep = sleep
        secrets = url_secrets(url) + [v for k, v in (headers or {}).items() if v]
        # Longest first, so a value is scrubbed whole before any part of it.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self.info = OracleInfo(
            "http",
            f"http:{self.shown_url}",
            details={
                "batch_size": batch_size,
                "timeout_s": timeout,
                "headers": sorted(k for k in (headers or {}) if k.lower() != "content-type"),
            },
        )

    def _scrub(self, text: str) -> str:
        """``text`` with the URL's credentials and the header values replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """An endpoint is asked about every pair."""
        return None

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Send the pairs in batches; return the endpoint's labels."""
        out: list[Judgement] = []
        for start in range(0, len(pairs), self.batch_size):
            out.extend(self._batch(pairs[start : start + self.batch_size], start))
        return out

    def _request_body(self, pairs: Sequence[Pair], offset: int) -> dict[str, Any]:
        items = []
        for i, p in enumerate(pairs):
            if p.query_text is None or p.doc_text is None:
                raise JudgeError(
                    f"the HTTP judge needs texts, but pair ({p.query_id!r}, {p.doc_id!r}) has none"
                )
            items.append(
                {
                    "id": str(offset + i),
                    "query_id": p.query_id,
                    "doc_id": p.doc_id,
                    "query": p.query_text,
                    "document": p.doc_text,
                    "positives": list(p.positive_texts),
                }
            )
        return {"protocol": PROTOCOL, "pairs": items}

    def _post(self, body: dict[str, Any]) -> requests.Response:
        data = json.dumps(body).encode("utf-8")
        last: str = ""
        for attempt in range(self.retries + 1):
            delay = backoff_delay(attempt + 1, self.policy, self.rng)
            try:
                response = self.session.post(
                    self.url, data=data, headers=self.headers, timeout=self.timeout
                )
            except requests.Timeout:
                last = f"no answer within {self.timeout[1]:g} s"
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
            except requests.RequestException as exc:
                # The exception's text may quote the URL or a header: scrub it, and do not chain
                # the original (its traceback would show them).
                raise JudgeError(
                    f"judge endpoint {self.shown_url}: {type(exc).__name__}: "
                    f"{self._scrub(str(exc))}"
                ) from None
            else:
                if response.status_code == 200:
                    return response
                snippet = self._scrub(response.text[:200].strip())
                if response.status_code not in _RETRY_STATUS:
                    raise JudgeError(
                        f"judge endpoint {self.shown_url} answered HTTP {response.status_code}: "
                        f"{snippet or '(empty body)'}"
                    )
                last = f"HTTP {response.status_code}: {snippet or '(empty body)'}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
                if retry_after is not None:
                    delay = min(retry_after, self.policy.max_retry_after)
            if attempt < self.retries:
                log.warning(
                    "judge endpoint %s: %s; retry %d of %d in %.1f s",
                    self.shown_url,
                    last,
                    attempt + 1,
                    self.retries,
                    delay,
                )
                self.sleep(delay)
        raise JudgeError(
            f"judge endpoint {self.shown_url} is unavailable after {self.retries + 1} attempt(s): "
            f"{last}. Is the judge service running and reachable?"
        )

    def _batch(self, pairs: Sequence[Pair], offset: int) -> list[Judgement]:
        response = self._post(self._request_body(pairs, offset))
        try:
            body = response.json()
        except ValueError as exc:
            raise JudgeError(f"judge endpoint {self.shown_url} answered with invalid JSON") from exc
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise JudgeError(f"judge endpoint {self.shown_url}: the answer has no 'results' list")
        by_id: dict[str, Judgement] = {}
        for item in results:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise JudgeError(
                    f"judge endpoint {self.shown_url}: each result needs a string 'id'"
                )
            label = item.get("label")
            if label not in LABELS:
                raise JudgeError(
                    f"judge endpoint {self.shown_url}: result {item['id']!r} has label {label!r}; "
                    "expected relevant, not_relevant or unsure"
                )
            score = item.get("score")
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, int | float)
            ):
                raise JudgeError(
                    f"judge endpoint {self.shown_url}: result {item['id']!r} has a non-numeric "
                    "score"
                )
            by_id[item["id"]] = Judgement(label, None if score is None else float(score))
        wanted = [str(offset + i) for i in range(len(pairs))]
        missing = [w for w in wanted if w not in by_id]
        if missing:
            raise JudgeError(
                f"judge endpoint {self.shown_url} did not answer {len(missing)} pair(s), first id "
                f"{missing[0]!r}"
            )
        return [by_id[w] for w in wanted]


@register
class HttpJudge(OracleKind):
    """``http://...`` or ``https://...``: a judge endpoint (the spec is the whole URL)."""

    prefixes = ("http", "https")
    usages = ("an http(s):// URL",)
    listed = 90

    @classmethod
    def argument(cls, spec: str) -> str | None:
        """The URL itself, for an http(s) URL."""
        return spec if spec.startswith(("http://", "https://")) else None

    def open(self, spec: str, argument: str, options: OracleOptions) -> HttpOracle:
        """The endpoint, with the http options."""
        return HttpOracle(
            spec,
            session=options.session,
            timeout=options.http_timeout,
            retries=options.http_retries,
            batch_size=options.http_batch_size,
            headers=options.http_headers,
        )
