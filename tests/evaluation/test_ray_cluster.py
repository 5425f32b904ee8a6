"""The Ray backend's options and connection: config validation, the install hint, fast failure
on an address where nothing listens (no Ray cluster needed for these)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from recallwatch.config import parse_config
from recallwatch.daemon.runner import Job, run_in_process
from recallwatch.encoders import EncoderOptions
from recallwatch.errors import ConfigError, EvaluationError
from recallwatch.evaluation.distributed import (
    ClusterUnavailableError,
    RayOptions,
    evaluate_on_ray,
)
from recallwatch.evaluation.distributed.cluster import check_address, import_ray
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint
from tests.helpers.processes import free_port


def config(tmp_path: Path, evaluation: dict[str, object]) -> dict[str, object]:
    return {
        "evaluation": evaluation,
        "heldout": [{"path": str(tmp_path)}],
        "runs": [{"name": "a", "directory": str(tmp_path)}],
    }


def test_the_ray_section_is_validated_with_dotted_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            config(
                tmp_path,
                {"backend": "slurm", "ray": {"address": "head", "shards": 0, "num_gpus": -1}},
            )
        )
    fields = dict(err.value.errors)
    assert set(fields) == {
        "evaluation.backend",
        "evaluation.ray.address",
        "evaluation.ray.shards",
        "evaluation.ray.num_gpus",
    }
    assert "ray://HOST:PORT" in fields["evaluation.ray.address"]
    ok = parse_config(
        config(tmp_path, {"backend": "ray", "ray": {"address": "ray://raycluster-head:10001"}})
    )
    assert ok.evaluation.ray.options()["address"] == "ray://raycluster-head:10001"
    assert parse_config(config(tmp_path, {})).evaluation.backend == "local"


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("auto", None),
        ("ray://head.ns.svc:10001", ("head.ns.svc", 10001)),
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("[::1]:6379", ("::1", 6379)),
    ],
)
def test_addresses(address: str, target: tuple[str, int] | None) -> None:
    assert check_address(address) == target


def test_without_ray_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'recallwatch\[ray\]'"):
        import_ray()


def test_a_closed_port_fails_as_cluster_unavailable_in_the_runner(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    synthetic = write_heldout(tmp_path / "heldout", num_docs=50, num_queries=5, seed=1)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", synthetic, noise=0.5, seed=1)
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClusterUnavailableError, match=address):
        evaluate_on_ray(
            synthetic.path,
            "test",
            1,
            "precomputed",
            ckpt,
            EncoderOptions(),
            RayOptions(address=address, connect_timeout_seconds=2),
        )
    job = Job(
        checkpoint=str(ckpt),
        encoder={"spec": "precomputed"},
        heldout=str(synthetic.path),
        split="test",
        relevance_level=1,
        ks=[1, 10],
        similarity="cosine",
        shard_rows=64,
        backend={"kind": "ray", **RayOptions(address=address).as_json()},
    )
    with pytest.raises(EvaluationError) as err:
        run_in_process(job, 60.0, threading.Event())
    assert err.value.reason == "cluster_unavailable"


def test_eval_command_on_an_unreachable_cluster_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    from recallwatch.cli import main

    synthetic = write_heldout(tmp_path / "heldout", num_docs=50, num_queries=5, seed=2)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", synthetic, noise=0.5, seed=2)
    address = f"127.0.0.1:{free_port()}"
    base = ["eval", "--heldout", str(synthetic.path), "--checkpoint", str(ckpt)]
    base += ["--encoder", "precomputed", "--backend", "ray"]
    assert main([*base, "--ray-address", address]) == 2
    assert f"cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    assert main([*base, "--ray-address", "head"]) == 2
    assert "--ray-address" in capsys.readouterr().err
