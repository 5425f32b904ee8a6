"""Bad input on the review's web paths: a mined set with a bad byte is a 422 naming its line, and a
reviewer named like a formula is no formula in the label CSVs (and reads back as it was written)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from recallwatch.commands.review import review_app
from recallwatch.errors import InputError
from recallwatch.mining.audit import AuditConfig
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles.labels import read_labels
from recallwatch.store import Store
from recallwatch.synthetic.mined import simulate_mined_set
from recallwatch.web.review import enable_review
from recallwatch.web.review_sets import ReviewSets, ReviewSettings, file_set
from tests.helpers.browser import Tab, live_app
from tests.web.helpers import app_over

TOKEN = "review-token"
BAD_LINE = 5
FORMULA = '=HYPERLINK("http://evil.example","click")'


def mined_set(tmp_path: Path) -> tuple[Path, Path]:
    """A simulated mined set (recallwatch JSONL) and its corpus directory."""
    sim = simulate_mined_set(num_queries=20, negatives_per_query=5, num_docs=300, seed=2)
    corpus, mined, _ = sim.write(tmp_path / "set")
    return corpus, mined


def with_bad_byte(path: Path, line: int) -> Path:
    """Replace the first quote of line ``line`` with a byte that is not UTF-8."""
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b'"', b'"\xff', 1)
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.fixture
def bad_review(tmp_path: Path, small_store: Store) -> Iterator[tuple[Any, str, Path]]:
    """The daemon's app offering one mined set whose line ``BAD_LINE`` has an invalid byte."""
    corpus, mined = mined_set(tmp_path)
    with_bad_byte(mined, BAD_LINE)
    rs = file_set(mined, corpus)
    app = app_over(small_store)
    enable_review(app, ReviewSets(ReviewSettings.with_token(TOKEN), lambda: [rs]))
    yield app, rs.key, mined


def test_a_mined_set_with_a_bad_byte_is_a_422_naming_the_file_and_line(
    bad_review: tuple[Any, str, Path],
) -> None:
    app, key, mined = bad_review
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get(f"/review/{key}").status_code == 200  # the page shell
    answer = client.get(f"/review/{key}/state", params={"reviewer": "ann"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["file"] == str(mined) and body["line"] == BAD_LINE
    assert f"line {BAD_LINE}" in body["detail"] and "not valid UTF-8" in body["detail"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"/review/{key}/labels.csv").status_code == 422


def test_the_review_page_shows_the_file_and_line(
    bad_review: tuple[Any, str, Path], tab: Tab
) -> None:
    app, key, mined = bad_review
    with live_app(app) as url:
        tab.page.goto(f"{url}/review/{key}")
        tab.page.wait_for_selector("#message.error")
        shown = tab.page.locator("#message").inner_text()
    assert shown.startswith("could not load the review (422)")
    assert str(mined) in shown and f"line {BAD_LINE}" in shown


def test_a_table_mined_set_names_the_line_of_a_bad_byte(tmp_path: Path) -> None:
    table = tmp_path / "mined.csv"
    table.write_bytes(b"query,positive,negative\nq one,p one,n one\nq two,p \xfftwo,n two\n")
    with pytest.raises(InputError, match=r"line 3: not valid UTF-8 \(byte 8 of the line\)"):
        read_mined(table, None)


def test_a_formula_reviewer_is_neutralised_in_the_csvs_and_reads_back(tmp_path: Path) -> None:
    corpus, mined = mined_set(tmp_path)
    labels = tmp_path / "labels.csv"
    audit = AuditConfig(sample_size=10, seed=1, control_size=0)
    app, store, _, key = review_app(
        mined, corpus, labels, audit, token=TOKEN, store_dir=tmp_path / "store"
    )
    client = TestClient(app)
    item = client.get(f"/review/{key}/state", params={"reviewer": FORMULA}).json()["item"]
    form = {
        "reviewer": FORMULA,
        "label": "relevant",
        **{k: item[k] for k in ("query_id", "doc_id")},
    }
    headers = {"Origin": "http://testserver", "X-Review-Token": TOKEN}
    assert client.post(f"/review/{key}/label", data=form, headers=headers).status_code == 200
    exported = client.get(f"/review/{key}/labels.csv").text
    store.close()
    for text in (exported, labels.read_text(encoding="utf-8")):  # the export and the mirror
        row = text.splitlines()[1]
        assert "'=HYPERLINK(" in row and ",=HYPERLINK(" not in row and '"=HYPERLINK(' not in row
    (read,) = read_labels(labels)
    assert read.reviewer == FORMULA
    # ``recallwatch review`` reads its label file back at start: the name is the same again.
    _, again, _, _ = review_app(
        mined, corpus, labels, audit, token=TOKEN, store_dir=tmp_path / "store2"
    )
    assert [r.reviewer for r in again.reviews.labels(key)] == [FORMULA]
    again.close()
