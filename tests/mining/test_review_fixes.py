"""Regressions from the review of the FN-rate code (issue 3): each test failed before its fix.

- the sample size for ``--half-width`` and the intervals use the same population (the judgeable
  negatives), so a qrels audit of part of the set gets the half-width it asked for;
- ``filter`` writes the query text back when the input carried it;
- a ratio with a zero control rate is unbounded above, and its JSON stays strict;
- the amplification ratio is the ratio of the two rates printed beside it;
- relative margins in filters and recommendations are exactly sentence-transformers';
- the HTTP judge's credentials (URL userinfo, query string, auth headers) appear in no message,
  log line or stored spec, and the CLI takes the auth header from the environment or a file.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from recallwatch.cli import main
from recallwatch.errors import ConfigError
from recallwatch.mining.audit import AuditConfig, run_audit
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.estimate import FN, NOT_FN, estimate_amplification, estimate_rates
from recallwatch.mining.filtering import confidence_filter
from recallwatch.mining.formats import read_mined
from recallwatch.mining.margins import st_relative_keep
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.oracles import (
    HttpOracle,
    JudgeError,
    QrelsOracle,
    redact_url,
    resolve_http_headers,
)
from recallwatch.mining.recommend import FilterSpec
from recallwatch.mining.sampling import RankBuckets, draw_sample
from recallwatch.stats import Interval, ratio_interval
from recallwatch.synthetic.mined import simulate_mined_set

from .conftest import write_jsonl
from .test_oracles import PAIRS, good_judge, judge_server, reply


def _strict_json(text: str) -> object:
    """Parse JSON rejecting the non-standard ``Infinity`` / ``NaN`` literals."""

    def refuse(literal: str) -> object:
        raise ValueError(f"non-standard JSON literal {literal}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------ 1. half-width, one population


@pytest.mark.parametrize(
    ("audited_queries", "half_width", "seed"),
    [
        (20, 0.025, 0),  # 600 judgeable of 12,000: the correction matters most
        (20, 0.05, 1),
        (60, 0.025, 2),  # 1,800 judgeable
        (400, 0.025, 3),  # everything audited: unchanged
    ],
)
def test_half_width_is_met_when_the_oracle_judges_part_of_the_set(
    audited_queries: int, half_width: float, seed: int
) -> None:
    # Every bucket at a 50% rate: the worst case the default --assumed-rate sizes for.
    sim = simulate_mined_set(
        num_queries=400,
        negatives_per_query=30,
        num_docs=5000,
        bucket_rates=(0.5,) * 6,
        seed=seed,
    )
    audited = [q.query_id for q in sim.mined.queries[:audited_queries]]
    qrels = {
        qid: dict.fromkeys(sim.relevant[qid] | set(q.positive_ids), 1)
        for qid, q in zip(audited, sim.mined.queries, strict=False)
    }
    oracle = QrelsOracle(qrels)
    audit = run_audit(
        sim.mined,
        None,
        oracle,
        AuditConfig(half_width=half_width, control_size=0, seed=seed),
    )
    rates = audit.rates
    assert audit.eligible_negatives == audited_queries * 30
    assert rates.population == audit.eligible_negatives and rates.total == 400 * 30
    assert rates.overall is not None and rates.stratified is not None
    # The Wilson interval the size was computed for meets the request ...
    assert rates.overall.half_width <= half_width
    # ... and the headline (post-stratified) one within a hair of it.
    assert rates.stratified.half_width <= half_width * 1.05
    if audited_queries < 400:
        assert any("negatives the oracle can judge" in n for n in rates.notes)


def test_buckets_report_judgeable_and_all_negatives() -> None:
    bucket = RankBuckets().assign(np.tile(np.arange(1, 51), 100))
    eligible = np.zeros(bucket.size, dtype=bool)
    eligible[:1000] = True
    sample = draw_sample(bucket, eligible, 200, np.random.default_rng(0), num_buckets=6)
    outcomes = np.full(sample.rows.size, NOT_FN, dtype=np.int8)
    est = estimate_rates(sample, outcomes, RankBuckets().labels)
    first = est.as_dict()["buckets"][0]
    assert first["population"] == 20 and first["negatives"] == 100
    assert est.as_dict()["population"] == 1000 and est.as_dict()["negatives"] == 5000


# -------------------------------------------------------------- 2. filter keeps the query text


def test_filter_writes_the_query_text_back(small_corpus: Path, tmp_path: Path) -> None:
    rows = [
        {
            "query_id": "q1",
            "query": "cats, in my own words",
            "positive_ids": ["d1"],
            "negatives": [{"doc_id": "d5", "rank": 1}, {"doc_id": "d2", "rank": 2}],
        },
        {  # no query field: its text comes from queries.jsonl and is not written
            "query_id": "q2",
            "positive_ids": ["d2"],
            "negatives": [{"doc_id": "d3", "rank": 1}],
        },
    ]
    mined = write_jsonl(tmp_path / "m.jsonl", rows)
    out = tmp_path / "clean.jsonl"
    args = ["filter", "--mined", str(mined), "--corpus", str(small_corpus), "--out", str(out)]
    assert main([*args, "--range-min", "1"]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written[0]["query"] == "cats, in my own words"
    assert "query" not in written[1]
    again = read_mined(out, load_corpus(small_corpus))
    assert again.queries[0].query_text == "cats, in my own words"
    assert again.queries[1].query_text == "tell me about dogs"


# ------------------------------------------------------ 3. a zero control rate: unbounded ratio


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb", "estimate", "lower_positive", "upper"),
    [
        (5, 100, 0, 100, math.inf, True, math.inf),
        (0, 100, 0, 100, math.nan, False, math.inf),
        (40, 400, 10, 500, 5.0, True, None),  # an ordinary ratio: finite upper bound
        (0, 100, 5, 100, 0.0, False, None),
    ],
)
def test_ratio_interval_contains_its_estimate(
    xa: int,
    na: int,
    xb: int,
    nb: int,
    estimate: float,
    lower_positive: bool,
    upper: float | None,
) -> None:
    r = ratio_interval(xa, na, xb, nb)
    if math.isnan(estimate):
        assert math.isnan(r.estimate)
    else:
        assert r.estimate == pytest.approx(estimate)
        assert r.lower <= r.estimate <= r.upper
    assert (r.lower > 0) is lower_positive
    if upper is None:
        assert math.isfinite(r.upper)
    else:
        assert r.upper == upper
    text = json.dumps(r.as_dict())
    doc = _strict_json(text)
    assert isinstance(doc, dict)
    for key in ("estimate", "upper"):
        value = getattr(r, key)
        if not math.isfinite(value):
            assert doc[key] is None and doc["non_finite"][key] == str(value)
    if math.isfinite(r.estimate) and math.isfinite(r.upper):
        assert "non_finite" not in doc


def test_interval_json_without_infinities_is_unchanged() -> None:
    assert Interval(0.1, 0.05, 0.2).as_dict() == {
        "estimate": 0.1,
        "lower": 0.05,
        "upper": 0.2,
        "confidence": 0.95,
    }


def test_fn_rate_json_is_strict_when_the_control_has_no_false_negative(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # q1's negative d5 (kittens) is relevant; the control pairs are judged by the same qrels,
    # where nothing else is relevant: the control rate is 0 and the ratio is unbounded.
    mined = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "query_id": "q1",
                "positive_ids": ["d1"],
                "negatives": [{"doc_id": "d5", "rank": 1}, {"doc_id": "d3", "rank": 2}],
            },
            {"query_id": "q2", "positive_ids": ["d2"], "negatives": [{"doc_id": "d6", "rank": 1}]},
        ],
    )
    qrels = tmp_path / "audit.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td5\t1\nq2\td2\t1\n")
    out = tmp_path / "fn.json"
    code = main(
        [
            "fn-rate",
            "--mined",
            str(mined),
            "--corpus",
            str(small_corpus),
            "--oracle",
            f"qrels:{qrels}",
            "--control",
            "3",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    capsys.readouterr()
    doc = _strict_json(out.read_text())
    assert isinstance(doc, dict)
    amp = doc["amplification"]
    assert amp["control_judged"] > 0 and amp["control_false_negatives"] == 0
    assert amp["ratio"]["lower"] > 0 and amp["ratio"]["upper"] is None
    assert amp["ratio"]["non_finite"] == {"estimate": "inf", "upper": "inf"}
    assert "no upper bound" in amp["note"]


# ------------------------------------------- 4. amplification = the printed rates' own ratio


@pytest.mark.parametrize("method", ["uniform", "stratified"])
def test_amplification_is_the_ratio_of_the_printed_rates(method: str) -> None:
    buckets = RankBuckets()
    bucket = buckets.assign(np.tile(np.arange(1, 151), 100))
    rng = np.random.default_rng(5)
    truth = rng.random(bucket.size) < np.array([0.4, 0.2, 0.1, 0.05, 0.03, 0.02])[bucket]
    sample = draw_sample(
        bucket,
        None,
        400,
        rng,
        num_buckets=len(buckets),
        method=method,  # type: ignore[arg-type]
    )
    rates = estimate_rates(sample, truth[sample.rows].astype(np.int8), buckets.labels)
    control = np.where(np.arange(500) < 8, FN, NOT_FN).astype(np.int8)
    amp = estimate_amplification(rates, control)
    assert amp.mined is rates.best and amp.random is not None and amp.ratio is not None
    assert amp.ratio.estimate == amp.mined.estimate / amp.random.estimate
    assert amp.ratio.lower <= amp.ratio.estimate <= amp.ratio.upper
    if method == "uniform":  # post-stratified headline differs from the raw overall rate
        assert rates.overall is not None
        assert rates.best is rates.stratified
        assert amp.mined.estimate != pytest.approx(rates.overall.estimate, abs=1e-9)


# ---------------------------------------------- 6. relative_margin exactly as sentence-transformers


@pytest.mark.parametrize(
    ("score", "positive", "margin", "kept"),
    [
        (0.90, 1.0, 0.05, True),  # 0.90 <= 0.95
        (0.96, 1.0, 0.05, False),
        (0.95, 1.0, 0.05, True),  # equal: sentence-transformers skips only score > threshold
        # Negative positive score: threshold (1 - m) * p lies above p.
        (-1.95, -2.0, 0.05, True),  # -1.95 <= -1.9
        (-1.85, -2.0, 0.05, False),
        (-2.05, -2.0, 0.05, True),
        (0.10, 0.0, 0.5, False),  # a zero positive: threshold 0
        (-0.10, 0.0, 0.5, True),
    ],
)
def test_relative_margin_matches_sentence_transformers(
    score: float, positive: float, margin: float, kept: bool
) -> None:
    st_skips = score > positive * (1 - margin)  # hard_negatives.py, verbatim rule
    assert kept is (not st_skips)
    s, p = np.array([score]), np.array([positive])
    assert bool(st_relative_keep(s, p, margin)[0]) is kept
    spec = FilterSpec(relative_margin=margin)
    assert bool(spec.keep(np.array([5]), s, p)[0]) is kept
    table = NegativeTable(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([5]), s, p.astype(np.float64)
    )
    assert bool(confidence_filter(table, spec).keep[0]) is kept


# ------------------------------------------------------------- 7. HTTP judge: no secret leaks

TOKEN = "Bearer tok-9f8e7d6c5b4a"
QUERY_SECRET = "qs-1a2b3c4d"
PASSWORD = "pw-5e6f7a8b"


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


def _secrets_in(text: str) -> list[str]:
    return [s for s in (TOKEN, "tok-9f8e7d6c5b4a", QUERY_SECRET, PASSWORD) if s in text]


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
    assert not _secrets_in("\n".join(shown))
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
    assert not _secrets_in(message + "\n".join(r.getMessage() for r in caplog.records))


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
    assert not _secrets_in(str(err.value) + "\n".join(r.getMessage() for r in caplog.records))


def test_fn_rate_cli_passes_the_auth_header_from_the_environment(
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mined = write_jsonl(
        tmp_path / "m.jsonl",
        [{"query_id": "q1", "positive_ids": ["d1"], "negatives": [{"doc_id": "d5", "rank": 1}]}],
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("JUDGE_TOKEN", TOKEN)
    monkeypatch.setenv("JUDGE_KEY", "key-0a1b2c3d")
    seen: list[tuple[str | None, str | None]] = []

    def judge(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        seen.append((h.headers.get("Authorization"), h.headers.get("X-Api-Key")))
        good_judge(h, body)

    caplog.set_level(logging.DEBUG, logger="recallwatch")
    out = tmp_path / "fn.json"
    with judge_server(judge) as (url, _):
        for auth in (["--http-auth-env", "JUDGE_TOKEN"], ["--http-auth-file", str(token_file)]):
            seen.clear()
            code = main(
                [
                    "fn-rate",
                    "--mined",
                    str(mined),
                    "--corpus",
                    str(small_corpus),
                    "--oracle",
                    f"{url}?token={QUERY_SECRET}",
                    *auth,
                    "--http-header-env",
                    "X-Api-Key=JUDGE_KEY",
                    "--control",
                    "0",
                    "--json",
                    str(out),
                ]
            )
            assert code == 0
            assert seen and set(seen) == {(TOKEN, "key-0a1b2c3d")}
            printed = capsys.readouterr()
            doc = out.read_text()
            assert not _secrets_in(printed.out + printed.err + doc)
            assert "key-0a1b2c3d" not in doc
            assert json.loads(doc)["oracle"]["spec"] == f"http:{url}?***"
    assert not _secrets_in("\n".join(r.getMessage() for r in caplog.records))


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
