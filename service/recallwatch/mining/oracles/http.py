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
are retried with exponential backoff (``Retry-After`` honoured, capped); other statuses and
malformed answers fail at once. The session, the sleep function and the clock of the backoff are
injected so tests control them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import requests

from recallwatch.mining.oracles.base import LABELS, JudgeError, Judgement, OracleInfo, Pair

__all__ = ["PROTOCOL", "HttpOracle"]

log = logging.getLogger(__name__)
PROTOCOL = "recallwatch-judge/1"
_RETRY_STATUS = {429, 500, 502, 503, 504}
_MAX_RETRY_AFTER = 30.0


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
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the judge URL must start with http:// or https://, got {url!r}")
        if batch_size < 1 or retries < 0:
            raise ValueError("batch_size must be positive and retries non-negative")
        self.url = url
        self.session = session or requests.Session()
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.sleep = sleep
        self.info = OracleInfo(
            "http", f"http:{url}", details={"batch_size": batch_size, "timeout_s": timeout}
        )

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
            delay = self.backoff * (2**attempt)
            try:
                response = self.session.post(
                    self.url, data=data, headers=self.headers, timeout=self.timeout
                )
            except requests.Timeout:
                last = f"no answer within {self.timeout[1]:g} s"
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
            except requests.RequestException as exc:
                raise JudgeError(f"judge endpoint {self.url}: {exc}") from exc
            else:
                if response.status_code == 200:
                    return response
                snippet = response.text[:200].strip()
                if response.status_code not in _RETRY_STATUS:
                    raise JudgeError(
                        f"judge endpoint {self.url} answered HTTP {response.status_code}: "
                        f"{snippet or '(empty body)'}"
                    )
                last = f"HTTP {response.status_code}: {snippet or '(empty body)'}"
                retry_after = response.headers.get("Retry-After")
                if retry_after is not None and retry_after.strip().replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), _MAX_RETRY_AFTER)
            if attempt < self.retries:
                log.warning(
                    "judge endpoint %s: %s; retry %d of %d in %.1f s",
                    self.url,
                    last,
                    attempt + 1,
                    self.retries,
                    delay,
                )
                self.sleep(delay)
        raise JudgeError(
            f"judge endpoint {self.url} is unavailable after {self.retries + 1} attempt(s): "
            f"{last}. Is the judge service running and reachable?"
        )

    def _batch(self, pairs: Sequence[Pair], offset: int) -> list[Judgement]:
        response = self._post(self._request_body(pairs, offset))
        try:
            body = response.json()
        except ValueError as exc:
            raise JudgeError(f"judge endpoint {self.url} answered with invalid JSON") from exc
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise JudgeError(f"judge endpoint {self.url}: the answer has no 'results' list")
        by_id: dict[str, Judgement] = {}
        for item in results:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise JudgeError(f"judge endpoint {self.url}: each result needs a string 'id'")
            label = item.get("label")
            if label not in LABELS:
                raise JudgeError(
                    f"judge endpoint {self.url}: result {item['id']!r} has label {label!r}; "
                    "expected relevant, not_relevant or unsure"
                )
            score = item.get("score")
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, int | float)
            ):
                raise JudgeError(
                    f"judge endpoint {self.url}: result {item['id']!r} has a non-numeric score"
                )
            by_id[item["id"]] = Judgement(label, None if score is None else float(score))
        wanted = [str(offset + i) for i in range(len(pairs))]
        missing = [w for w in wanted if w not in by_id]
        if missing:
            raise JudgeError(
                f"judge endpoint {self.url} did not answer {len(missing)} pair(s), first id "
                f"{missing[0]!r}"
            )
        return [by_id[w] for w in wanted]
