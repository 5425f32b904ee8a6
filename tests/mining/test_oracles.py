"""Oracles: qrels, labels (files and the store), model rule, ensemble, and a real HTTP judge."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import requests

from recallwatch.errors import ConfigError, InputError
from recallwatch.mining.oracles import (
    EnsembleOracle,
    HttpOracle,
    JudgeError,
    JudgeRule,
    LabelsOracle,
    LabelStore,
    MemoryLabelStore,
    ModelOracle,
    Pair,
    QrelsOracle,
    ReviewLabel,
    combine_votes,
    open_oracle,
    read_labels,
    redact_url,
    resolve_http_headers,
)
from recallwatch.mining.oracles.model import detect_model_kind
from tests.helpers.judge import (
    PASSWORD,
    QUERY_SECRET,
    TOKEN,
    good_judge,
    judge_server,
    reply,
    secrets_in,
)

PAIRS = [
    Pair("q1", "d5", "what are cats", "Kittens are young cats", ("d1",), ("Cats are animals",)),
    Pair("q1", "d3", "what are cats", "Cars have wheels", ("d1",), ("Cats are animals",)),
    Pair("q9", "d2", "unknown query", "Dogs", ("d6",), ("Puppies",)),
]


def test_qrels_oracle_judges_audited_queries_densely(tmp_path: Path) -> None:
    qrels = tmp_path / "audit.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td5\t1\nq1\td3\t0\n")
    oracle = QrelsOracle.from_file(qrels, relevance_level=1)
    mask = oracle.eligible(["q1", "q1", "q9"], ["d5", "d3", "d2"])
    assert mask is not None and list(mask) == [True, True, False]
    labels = [j.label for j in oracle.judge(PAIRS)]
    assert labels == ["relevant", "not_relevant", None]
    assert QrelsOracle.from_file(qrels, relevance_level=2).judge(PAIRS[:1])[0].label == (
        "not_relevant"
    )
    assert oracle.info.kind == "qrels" and oracle.info.spec == f"qrels:{qrels}"


def test_label_files_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "query_id,doc_id,label,reviewer,time\n"
        "q1,d5,relevant,ann,2025-01-01T10:00:00Z\n"
        "q1,d3,not_relevant,ann,\n"
        "q1,d4,,,\n"  # not reviewed yet
        "q1,d6,unsure,bob,2025-01-02T10:00:00\n"
    )
    labels = read_labels(csv_path)
    assert [(x.doc_id, x.label) for x in labels] == [
        ("d5", "relevant"),
        ("d3", "not_relevant"),
        ("d6", "unsure"),
    ]
    assert labels[0].time is not None and labels[0].reviewer == "ann"
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(json.dumps({"query_id": "q1", "doc_id": "d5", "label": "relevant"}) + "\n")
    assert read_labels(jsonl)[0].label == "relevant"


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        ("query_id,doc_id,label\nq1,d1,maybe\n", 2, "label", "unknown label"),
        ("query_id,doc_id,label,time\nq1,d1,relevant,yesterday\n", 2, "time", "ISO 8601"),
        ("query_id,doc_id,label\nq1,,relevant\n", 2, "doc_id", "missing doc_id"),
        ("query,doc,label\nq1,d1,relevant\n", 1, None, "missing column"),
    ],
)
def test_label_file_errors_name_the_line(
    tmp_path: Path, body: str, line: int, field: str | None, message: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=message) as info:
        read_labels(path)
    assert (info.value.line, info.value.field) == (line, field)


def test_label_store_disagreement_and_updates() -> None:
    store = MemoryLabelStore()
    assert isinstance(store, LabelStore)
    store.add(ReviewLabel("q1", "d5", "relevant", "ann"))
    assert store.get("q1", "d5") == "relevant"
    store.add(ReviewLabel("q1", "d5", "not_relevant", "bob"))
    assert store.get("q1", "d5") == "unsure"  # reviewers disagree
    store.add(ReviewLabel("q1", "d5", "not_relevant", "ann"))  # ann changes her mind
    assert store.get("q1", "d5") == "not_relevant"
    assert store.get("q1", "d3") is None
    oracle = LabelsOracle(store)
    mask = oracle.eligible(["q1", "q1"], ["d5", "d3"])
    assert mask is not None and list(mask) == [True, False]
    assert [j.label for j in oracle.judge(PAIRS[:2])] == ["not_relevant", None]


class FakeScorer:
    """Scores by word overlap: a deterministic stand-in for a judge model."""

    name = "overlap"

    def score(self, queries: list[str], documents: list[str]) -> npt.NDArray[np.float64]:
        out = []
        for q, d in zip(queries, documents, strict=True):
            qs, ds = set(q.lower().split()), set(d.lower().split())
            out.append(len(qs & ds) / max(len(qs), 1))
        return np.asarray(out, dtype=np.float64)


def test_model_rule_is_positive_aware() -> None:
    rule = JudgeRule(relative_margin=0.05)
    fn = rule.false_negative(np.array([0.95, 0.96, 0.5, -0.2]), np.array([1.0, 1.0, 1.0, -0.2]))
    assert list(fn) == [True, True, False, True]
    both = JudgeRule(relative_margin=None, threshold=0.5)
    assert list(both.false_negative(np.array([0.4, 0.6]), np.array([0.9, 0.9]))) == [False, True]
    with pytest.raises(ValueError):
        JudgeRule(relative_margin=None, threshold=None)


def test_model_oracle_scores_negative_against_positive() -> None:
    oracle = ModelOracle(FakeScorer(), JudgeRule(relative_margin=0.5), spec="model:fake")
    out = oracle.judge(PAIRS[:2])
    # "cats" overlaps the query like the positive does; "cars" does not.
    assert [j.label for j in out] == ["relevant", "not_relevant"]
    assert out[0].positive_score is not None and out[0].score is not None
    proxy = ModelOracle(FakeScorer(), JudgeRule(), spec="proxy:ckpt", proxy=True)
    assert proxy.info.proxy and proxy.info.kind == "proxy"
    with pytest.raises(JudgeError, match="needs texts"):
        oracle.judge([Pair("q1", "d5")])


def test_ensemble_m_of_n() -> None:
    assert combine_votes(["relevant", "relevant", "not_relevant"], 2) == "relevant"
    assert combine_votes(["relevant", "not_relevant", "not_relevant"], 2) == "not_relevant"
    assert combine_votes(["relevant", "unsure", "not_relevant"], 2) == "unsure"
    assert combine_votes(["relevant", None, "not_relevant"], 1) == "relevant"
    loose = ModelOracle(
        FakeScorer(), JudgeRule(relative_margin=None, threshold=0.0), spec="model:loose"
    )
    strict = ModelOracle(FakeScorer(), JudgeRule(relative_margin=0.0), spec="model:strict")
    both = EnsembleOracle([loose, strict], agree=2)
    single = EnsembleOracle([loose, strict], agree=1)
    assert [j.label for j in both.judge(PAIRS[:2])] == ["relevant", "not_relevant"]
    assert single.judge(PAIRS[1:2])[0].label == "relevant"  # loose flags even "cars"
    assert both.info.members[0].spec == "model:loose" and both.info.spec == "ensemble:2-of-2"
    with pytest.raises(ValueError):
        EnsembleOracle([loose, strict], agree=3)


def test_open_oracle_rejects_unknown_specs() -> None:
    with pytest.raises(ConfigError, match="unknown oracle"):
        open_oracle("magic:thing")
    with pytest.raises(ConfigError, match="unknown oracle"):
        open_oracle("qrels")


# ------------------------------------------------------------------------ a real HTTP judge


def test_http_judge_contract_and_batches() -> None:
    sleeps: list[float] = []
    with judge_server(good_judge) as (url, received), requests.Session() as session:
        oracle = HttpOracle(url, session=session, batch_size=2, sleep=sleeps.append)
        out = oracle.judge(PAIRS)
    assert [j.label for j in out] == ["relevant", "not_relevant", "not_relevant"]
    assert len(received) == 2 and received[0]["protocol"] == "recallwatch-judge/1"
    first = received[0]["pairs"][0]
    assert first == {
        "id": "0",
        "query_id": "q1",
        "doc_id": "d5",
        "query": "what are cats",
        "document": "Kittens are young cats",
        "positives": ["Cats are animals"],
    }
    assert received[1]["pairs"][0]["id"] == "2" and not sleeps


def test_http_judge_retries_5xx_and_honours_retry_after() -> None:
    calls = {"n": 0}

    def flaky(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            reply(h, 503, {"error": "warming up"}, {"Retry-After": "2"})
        elif calls["n"] == 2:
            reply(h, 500, {"error": "oops"})
        else:
            good_judge(h, body)

    sleeps: list[float] = []
    with judge_server(flaky) as (url, _), requests.Session() as session:
        out = HttpOracle(
            url, session=session, retries=3, backoff=0.5, sleep=sleeps.append, rng=lambda: 1.0
        ).judge(PAIRS[:1])
    assert out[0].label == "relevant"
    assert sleeps == [2.0, 1.0]  # Retry-After, then exponential backoff (0.5 * 2**1)


def test_http_judge_reads_retry_after_as_a_date_and_jitters_its_backoff() -> None:
    """``Retry-After`` as an HTTP date (the delivery code's parser); backoff with jitter."""
    now = 1_700_000_000.0
    calls = {"n": 0}

    def busy(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # 7 s after the injected clock's now, as an IMF-fixdate
            reply(h, 429, {"error": "slow down"}, {"Retry-After": formatdate(now + 7, usegmt=True)})
        elif calls["n"] == 2:
            reply(h, 503, {"error": "busy"}, {"Retry-After": "soon"})  # unparseable: backoff
        elif calls["n"] == 3:
            reply(h, 503, {"error": "busy"}, {"Retry-After": "3600"})  # capped at 30 s
        else:
            good_judge(h, body)

    sleeps: list[float] = []
    with judge_server(busy) as (url, _), requests.Session() as session:
        oracle = HttpOracle(
            url,
            session=session,
            retries=3,
            backoff=0.5,
            sleep=sleeps.append,
            clock=lambda: now,
            rng=lambda: 0.0,  # the smallest jitter draw: half the nominal delay
        )
        assert oracle.judge(PAIRS[:1])[0].label == "relevant"
    assert sleeps == [7.0, 0.5, 30.0]  # date; 0.5 * 2**1 * (1 - 0.5); the cap


def test_http_judge_always_failing_gives_a_clear_error() -> None:
    def broken(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        reply(h, 500, {"error": "model crashed"})

    sleeps: list[float] = []
    with judge_server(broken) as (url, received), requests.Session() as session:
        oracle = HttpOracle(url, session=session, retries=2, sleep=sleeps.append)
        with pytest.raises(JudgeError, match=r"unavailable after 3 attempt\(s\): HTTP 500"):
            oracle.judge(PAIRS[:1])
    assert len(received) == 3 and len(sleeps) == 2


def test_http_judge_down_gives_a_clear_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with requests.Session() as session:
        oracle = HttpOracle(
            f"http://127.0.0.1:{port}/judge",
            session=session,
            retries=1,
            connect_timeout=2,
            sleep=lambda s: None,
        )
        with pytest.raises(JudgeError, match=r"cannot connect.*Is the judge service running"):
            oracle.judge(PAIRS[:1])


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, {"error": "bad request"}, "HTTP 400"),
        (200, b"not json", "invalid JSON"),
        (200, {"answers": []}, "no 'results' list"),
        (200, {"results": [{"id": "0", "label": "maybe"}]}, "label 'maybe'"),
        (200, {"results": []}, "did not answer 1 pair"),
    ],
)
def test_http_judge_bad_answers_fail_at_once(status: int, body: object, message: str) -> None:
    with (
        judge_server(lambda h, _: reply(h, status, body)) as (url, received),
        requests.Session() as session,
    ):
        oracle = HttpOracle(url, session=session, retries=3, sleep=lambda s: None)
        with pytest.raises(JudgeError, match=message):
            oracle.judge(PAIRS[:1])
    assert len(received) == 1  # not retried


def test_http_judge_timeout(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        release.wait(5)
        good_judge(h, body)

    with judge_server(slow) as (url, _), requests.Session() as session:
        oracle = HttpOracle(url, session=session, timeout=0.2, retries=0, sleep=lambda s: None)
        try:
            with pytest.raises(JudgeError, match=r"no answer within 0\.2 s"):
                oracle.judge(PAIRS[:1])
        finally:
            release.set()


def test_real_cross_encoder_directory(tmp_path: Path, minilm_dir: Path) -> None:
    """A CrossEncoder saved by sentence-transformers is detected and scores pairs offline."""
    from sentence_transformers import CrossEncoder

    ce_dir = tmp_path / "ce"
    CrossEncoder(str(minilm_dir), num_labels=1, local_files_only=True).save(str(ce_dir))
    assert detect_model_kind(ce_dir) == "cross-encoder"
    assert detect_model_kind(minilm_dir) == "bi-encoder"
    oracle = open_oracle(f"cross-encoder:{ce_dir}")
    out = oracle.judge(PAIRS[:2])
    assert all(j.score is not None and 0.0 <= j.score <= 1.0 for j in out)
    assert all(j.label in ("relevant", "not_relevant") for j in out)


@pytest.mark.parametrize(
    ("url_of", "redacted_of"),
    [
        (lambda base: base, lambda base: base),
        (
            lambda base: base + f"?token={QUERY_SECRET}&x=1",
            lambda base: base + "?***",
        ),
        (
            lambda base: base.replace("http://", f"http://judge:{PASSWORD}@") + "#frag",
            lambda base: base.replace("http://", "http://***@"),
        ),
    ],
    ids=["plain", "query-token", "userinfo"],
)
def test_redact_url(url_of: Callable[[str], str], redacted_of: Callable[[str], str]) -> None:
    base = "https://judge.example:8443/v1/judge"
    assert redact_url(url_of(base)) == redacted_of(base)


def test_http_judge_sends_the_header_and_leaks_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str | None] = []
    calls = {"n": 0}

    def judge(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        seen.append(h.headers.get("Authorization"))
        calls["n"] += 1
        if calls["n"] == 1:  # a retried failure that echoes what it got
            reply(h, 503, {"error": f"busy; you sent {h.path} {h.headers.get('Authorization')}"})
        else:
            good_judge(h, body)

    caplog.set_level(logging.DEBUG, logger="recallwatch")
    headers = resolve_http_headers(auth_env="JUDGE_TOKEN", environ={"JUDGE_TOKEN": TOKEN})
    with judge_server(judge) as (url, _), requests.Session() as session:
        secret_url = url.replace("http://", f"http://judge:{PASSWORD}@") + f"?token={QUERY_SECRET}"
        oracle = HttpOracle(secret_url, session=session, headers=headers, sleep=lambda s: None)
        assert [j.label for j in oracle.judge(PAIRS[:1])] == ["relevant"]
    assert seen == [TOKEN, TOKEN]  # the explicit header wins over the URL's userinfo
    assert any("retry 1 of 3" in r.getMessage() for r in caplog.records)
    shown = [r.getMessage() for r in caplog.records] + [oracle.info.spec, str(oracle.info)]
    assert not secrets_in("\n".join(shown))
    assert oracle.info.spec == "http:" + url.replace("http://", "http://***@") + "?***"


@pytest.mark.parametrize("status", [503, 401])
def test_http_judge_errors_leak_no_secret(status: int, caplog: pytest.LogCaptureFixture) -> None:
    def echo(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        reply(h, status, {"error": f"{h.path} {h.headers.get('Authorization')}"})

    caplog.set_level(logging.DEBUG, logger="recallwatch")
    headers = {"Authorization": TOKEN}
    with judge_server(echo) as (url, _), requests.Session() as session:
        oracle = HttpOracle(
            f"{url}?token={QUERY_SECRET}",
            session=session,
            headers=headers,
            retries=1,
            sleep=lambda s: None,
        )
        with pytest.raises(JudgeError) as err:
            oracle.judge(PAIRS[:1])
    message = str(err.value)
    assert "***" in message and f"HTTP {status}" in message
    assert not secrets_in(message + "\n".join(r.getMessage() for r in caplog.records))


def test_http_judge_down_leaks_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.DEBUG, logger="recallwatch")
    url = f"http://judge:{PASSWORD}@127.0.0.1:{port}/judge?token={QUERY_SECRET}"
    with requests.Session() as session:
        oracle = HttpOracle(url, session=session, retries=1, connect_timeout=2, sleep=lambda s: 0)
        with pytest.raises(JudgeError, match="unavailable") as err:
            oracle.judge(PAIRS[:1])
    assert not secrets_in(str(err.value) + "\n".join(r.getMessage() for r in caplog.records))


def test_missing_auth_variable_is_a_clear_error(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="'NO_SUCH_VAR' is not set"):
        resolve_http_headers(auth_env="NO_SUCH_VAR", environ={})
    with pytest.raises(ConfigError, match="NAME=ENVVAR"):
        resolve_http_headers(header_env=["X-Key"], environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_http_headers(auth_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="one-line value"):
        resolve_http_headers(auth_env="T", environ={"T": "Bearer a\nX-Evil: 1"})
