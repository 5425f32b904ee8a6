"""``recallwatch store`` and ``serve``'s start-up store check, as real commands on real files."""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from recallwatch.cli import main
from recallwatch.commands.store import startup_check
from recallwatch.store.maintenance import backup
from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import REPO
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.seed import populate
from tests.helpers.serve import PYTHONPATH, Serve


def recallwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``recallwatch`` command line to its end."""
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        cwd=REPO,
        timeout=120,
    )


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    """Every row of a table, read-only, in rowid order."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def evaluated(api: httpx.Client, step: int) -> bool:
    """Whether ``checkpoint-<step>`` of run ``demo`` is evaluated."""
    r = api.get(f"/api/v1/runs/demo/checkpoints/checkpoint-{step}")
    return r.status_code == 200 and r.json()["state"] == "evaluated"


def test_backup_while_serving_is_consistent_and_restore_waits_for_the_daemon(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    run_dir = tmp_path / "run"
    for step in (100, 200, 300):
        write_checkpoint(run_dir, step, synthetic)
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    store = tmp_path / "state" / "recallwatch.db"
    daemon = serve(config, tmp_path / "serve.log").start()
    backups = tmp_path / "backups"
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        # Backups taken while the daemon backfills (and writes) are each a sound store.
        while not evaluated(api, 300):
            done = recallwatch(
                "store", "backup", str(backups / "during.db"), "--config", str(config)
            )
            assert done.returncode == 0, done.stderr
            assert ": ok (" in done.stdout
        done = recallwatch("store", "backup", str(backups), "--config", str(config))
        assert done.returncode == 0, done.stderr
    copy = next(backups.glob("recallwatch-backup-*.db"))
    # The daemon is idle now: the copy holds exactly the live store's rows.
    for table in ("runs", "checkpoints", "evaluations", "stage_timings"):
        assert rows(copy, table) == rows(store, table), table
    assert len(rows(copy, "evaluations")) == 3

    refused = recallwatch("store", "restore", str(copy), "--config", str(config))
    assert refused.returncode == 2
    assert f"in use by another recallwatch process (pid {daemon.proc.pid})" in refused.stderr  # type: ignore[union-attr]
    assert "stop the daemon (SIGTERM), then run the restore again" in refused.stderr
    assert daemon.stop() == 0

    restored = recallwatch("store", "restore", str(copy), "--config", str(config))
    assert restored.returncode == 0, restored.stderr
    assert "3 checkpoints, 3 evaluations" in restored.stdout
    assert "before-restore" in restored.stdout
    checked = recallwatch("store", "check", "--config", str(config))
    assert checked.returncode == 0 and f"{store}: ok" in checked.stdout


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _header(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"\xa5" * 100)


def _middle(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(random.Random(20).randbytes(4096))


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (_truncate, "the file is truncated"),
        (_header, "the header is damaged"),
        (_middle, "damaged tables: "),
    ],
    ids=["truncated", "header", "random-bytes-in-the-middle"],
)
def test_serve_refuses_a_damaged_store_with_the_restore_command(
    tmp_path: Path,
    synthetic: SyntheticSet,
    damage: object,
    what: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, tmp_path))
    store = populate(tmp_path / "state" / "recallwatch.db")
    newest = backup(store, store.parent).dest
    damage(store)  # type: ignore[operator]

    started = recallwatch("serve", "--config", str(config))
    assert started.returncode == 2
    assert "Traceback" not in started.stderr
    assert " serving" not in started.stderr.replace("not serving on it", "")
    assert "writable" not in started.stderr  # not the advice about directory permissions
    assert f"the store {store} is damaged; not serving on it:" in started.stderr
    assert what in started.stderr
    assert f"recallwatch store restore {newest} --config {config}" in started.stderr

    assert main(["store", "check", "--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert f"{store}: damaged" in out and what in out


def test_an_emptied_store_beside_an_earlier_one_needs_fresh_store(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, tmp_path))
    store = populate(tmp_path / "state" / "recallwatch.db")
    (store.parent / "reviews").mkdir()
    (store.parent / "reviews" / "k.csv").write_text("query_id,doc_id,label\n", encoding="utf-8")
    wal = Path(f"{store}-wal")
    wal.write_bytes(b"\0" * 32)
    store.write_bytes(b"")  # emptied to 0 bytes

    refused = recallwatch("serve", "--config", str(config))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"the store {store} is empty (0 bytes), but an earlier store left:" in refused.stderr
    assert f"the review label mirror {store.parent / 'reviews'} (1 file(s))" in refused.stderr
    assert f"a write-ahead log {wal} (32 bytes)" in refused.stderr
    assert f"recallwatch serve --fresh-store --config {config}" in refused.stderr

    daemon = serve(config, tmp_path / "serve.log", args=["--fresh-store"]).start()
    warned = [r for r in daemon.records() if "--fresh-store" in r["message"]]
    assert warned and "review label mirror" in warned[0]["ignored"]
    # The old log is set aside with the emptied file: SQLite must not replay it into the new store.
    (aside,) = store.parent.glob("recallwatch-replaced-*.db-wal")
    assert aside.read_bytes() == b"\0" * 32
    assert daemon.stop() == 0


def test_fresh_store_sets_a_damaged_store_aside(tmp_path: Path) -> None:
    store = populate(tmp_path / "recallwatch.db")
    _header(store)
    Path(f"{store}-wal").write_bytes(b"log")
    args = argparse.Namespace(fresh_store=True, config=tmp_path / "rw.yaml", store=None)
    startup_check(store, args)
    assert not store.exists() and not Path(f"{store}-wal").exists()
    (aside,) = tmp_path.glob("recallwatch-damaged-*.db")
    assert Path(f"{aside}-wal").read_bytes() == b"log"
    startup_check(store, args)  # nothing left: a new store, no signs, nothing to say
