"""The ``recallwatch eval`` and ``recallwatch demo`` command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recallwatch.cli import main
from recallwatch.records.precision import PrecisionReport
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, Path]:
    s = write_heldout(tmp_path / "heldout", num_docs=500, num_queries=50, dim=16, seed=1)
    return s.path, write_precomputed_checkpoint(tmp_path / "ckpt", s, noise=0.4)


def test_eval_prints_table_and_writes_json(example, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    heldout, ckpt = example
    out = tmp_path / "out" / "eval.json"
    rc = main(
        [
            "eval",
            "--heldout",
            str(heldout),
            "--checkpoint",
            str(ckpt),
            "--encoder",
            "precomputed",
            "--k",
            "10,1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["metric", "@1", "@10"]
    assert "50 queries evaluated, 0 excluded" in printed
    doc = json.loads(out.read_text())
    assert doc["ks"] == [1, 10]
    assert set(doc["metrics"]) == {
        "recall",
        "success",
        "precision",
        "mrr",
        "ndcg",
        "map",
        "unjudged",
    }
    assert 0.0 < doc["metrics"]["recall"]["10"] <= 1.0
    # The share of unjudged documents in the top k (docs/holes.md).
    assert 0.0 < doc["metrics"]["unjudged"]["10"] < 1.0
    assert doc["counts"] == {
        "queries_evaluated": 50,
        "queries_excluded_no_relevant": 0,
        "documents": 500,
        "dimension": 16,
    }
    assert set(doc["timings_seconds"]) == {"encode", "search", "metrics"}
    assert doc["environment"]["faiss_omp_threads"] >= 1
    assert "numpy" in doc["environment"]["packages"]


def test_eval_error_exits_2_with_located_message(example, capsys) -> None:  # type: ignore[no-untyped-def]
    heldout, ckpt = example
    (heldout / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc1\n")
    rc = main(
        ["eval", "--heldout", str(heldout), "--checkpoint", str(ckpt), "--encoder", "precomputed"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert (
        "recallwatch: error:" in err and "test.tsv, line 2: expected 3 tab-separated columns" in err
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0,5"], "cutoffs must be positive integers"),
        (["--k", "ten"], "expected comma-separated integers"),
        (["--similarity", "hamming"], "invalid choice: 'hamming'"),
        (["--precision", "fp8"], "invalid choice: 'fp8'"),
    ],
)
def test_eval_argument_errors(example, capsys, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    heldout, ckpt = example
    with pytest.raises(SystemExit) as info:
        main(["eval", "--heldout", str(heldout), "--checkpoint", str(ckpt), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_st_eval_records_the_precision_it_used(tmp_path: Path, minilm_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``--precision auto`` on the real MiniLM: the device's bf16 where it has it (the probe
    passes for this model), else fp32; ``--precision fp32`` and the default are fp32. All shown
    and written."""
    from recallwatch.encoders.precision import capability

    s = write_heldout(tmp_path / "heldout", num_docs=60, num_queries=6, dim=8, seed=2)
    used = {}
    for precision in ("auto", "fp32", "default"):
        out = tmp_path / f"{precision}.json"
        args = ["eval", "--heldout", str(s.path), "--checkpoint", str(minilm_dir)]
        args += ["--encoder", "st", "--k", "1,10", "--json", str(out)]
        args += [] if precision == "default" else ["--precision", precision]
        assert main(args) == 0
        doc = json.loads(out.read_text())
        used[precision] = doc["precision"]
        printed = capsys.readouterr().out
        assert f"encoder sentence-transformers ({used[precision]})" in printed
        # the precision report: in the JSON, and printed in one line
        report = PrecisionReport.from_json(doc["precision_report"])
        assert report.used == used[precision] and report.describe() in printed
        probed = precision == "auto" and capability("cpu") is not None
        assert report.verdict == ("passed" if probed else "not-run")
        assert (report.shift is not None) == probed  # the held-out judgements reach the probe
    assert used == {"auto": capability("cpu") or "fp32", "fp32": "fp32", "default": "fp32"}


def test_precomputed_eval_has_no_precision(example, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    heldout, ckpt = example
    out = tmp_path / "e.json"
    args = ["eval", "--heldout", str(heldout), "--checkpoint", str(ckpt)]
    assert main([*args, "--encoder", "precomputed", "--precision", "bf16", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["precision"] is None
    assert doc["precision_report"]["verdict"] == "not-applicable"


def test_bad_encoder_is_a_config_error(example, capsys) -> None:  # type: ignore[no-untyped-def]
    heldout, ckpt = example
    rc = main(["eval", "--heldout", str(heldout), "--checkpoint", str(ckpt), "--encoder", "bert"])
    assert rc == 2
    assert "--encoder: unknown encoder 'bert'" in capsys.readouterr().err


def test_console_script_help_and_eval_only_demo(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "recallwatch"
    if not exe.exists():
        pytest.skip("the recallwatch console script is not installed in this environment")
    help_text = subprocess.run(
        [exe, "eval", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "python:MODULE:FN" in help_text and "--json" in help_text
    done = subprocess.run(
        [exe, "demo", "--eval-only", "--workdir", str(tmp_path / "demo")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("recall ") == 2
    assert (
        tmp_path / "demo" / "run" / "checkpoint-1000" / "eval_embeddings" / "corpus.npy"
    ).is_file()
