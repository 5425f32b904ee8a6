"""The Dockerfile and deploy/ examples: what can be checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def dockerfile() -> dict[str, list[str]]:
    """Instructions of the Dockerfile, continuation lines joined: {INSTRUCTION: [args, ...]}."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def test_dockerfile_copies_what_the_install_needs() -> None:
    df = dockerfile()
    copied = {part for c in df["COPY"] for part in c.split()[:-1]}
    assert {"pyproject.toml", "README.md", "service"} <= copied
    assert df["EXPOSE"] == ["9464"]
    assert df["FROM"][0].startswith("python:3.11")
    # The health check's command is valid Python.
    health = df["HEALTHCHECK"][0]
    code = re.search(r'python -c "(.+)"$', health)
    assert code is not None
    compile(code.group(1), "HEALTHCHECK", "exec")


@pytest.mark.slow
def test_dockerfile_install_and_entrypoint_in_a_fresh_venv(tmp_path: Path) -> None:
    """Run the image's `pip install .` in a fresh venv, then its ENTRYPOINT + CMD (with --help)."""
    df = dockerfile()
    install = df["RUN"][0].split("&&")[0].strip()
    assert install == "pip install ."
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):  # what the Dockerfile COPYs
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "service",
        src / "service",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "."],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    entry = shlex.split(df["ENTRYPOINT"][0].replace('"', "'").strip("[]").replace("'", ""))[0]
    cmd = [c.strip(' "') for c in df["CMD"][0].strip("[]").split(",")]
    exe = env_dir / "bin" / entry.strip(",")
    out = subprocess.run(
        [str(exe), *cmd, "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "--listen" in out.stdout and "--log-format" in out.stdout
    # `make demo` runs on this same core install: the daemon demo delivers its alert.
    demo = subprocess.run(
        [
            str(env_dir / "bin" / "recallwatch"),
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--interval",
            "1",
            "--duration",
            "40",
            "--listen",
            "127.0.0.1:0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "alert.firing" in demo.stdout and "signature verified" in demo.stdout
    # Without torch: the core install must not have pulled it (the st extra is opt-in).
    probe = subprocess.run([str(py), "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0


def test_compose_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and not source.startswith("/path/to"):
                if source.endswith("recallwatch.yaml"):
                    continue  # the user's own config
                assert (DEPLOY / source).exists(), (name, source)
    assert compose["services"]["recallwatch"]["build"] == ".."


def test_alertmanager_example_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not found: apt-get install -y prometheus-alertmanager")
    out = subprocess.run(
        [amtool, "check-config", str(DEPLOY / "alertmanager.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_example_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install -y prometheus")
    # Point the rule file at the repository's copy (the compose file mounts it at that path).
    cfg = (
        (DEPLOY / "prometheus.yml")
        .read_text()
        .replace(
            "/etc/prometheus/rules/recallwatch.rules.yml",
            str(REPO / "alerts" / "recallwatch.rules.yml"),
        )
    )
    (tmp_path / "prometheus.yml").write_text(cfg)
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def check_config_problems(
    text: str, tmp_path: Path, env: dict[str, str] | None = None
) -> list[str]:
    """Run ``recallwatch check-config`` on a config text; return its indented problem lines."""
    (tmp_path / "recallwatch.yaml").write_text(text)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recallwatch.cli",
            "check-config",
            str(tmp_path / "recallwatch.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    problems = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("  ")]
    # A valid file prints an indented summary too; keep only error lines when it failed.
    return problems if out.returncode != 0 else []


def test_kubernetes_example_config_passes_check_config(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "recallwatch.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"]
    problems = check_config_problems(docs[0]["data"]["recallwatch.yaml"], tmp_path)
    # Paths of the pod (/heldout, /runs) do not exist here: only those may be reported.
    assert all("/heldout" in p or "/runs" in p or "/var/lib" in p for p in problems), problems


def test_readme_minimal_config_passes_check_config(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("A minimal `recallwatch.yaml`", 1)[1].split("```yaml\n", 1)[1]
    env = {**os.environ, "RECALLWATCH_SLACK_WEBHOOK_URL": "https://hooks.invalid/T/B/x"}
    problems = check_config_problems(block.split("```", 1)[0], tmp_path, env)
    # The README's paths (/data/..., /checkpoints/...) do not exist here: only those may fail.
    assert problems  # the held-out path is missing, so it must say so
    assert all("/data/" in p or "/checkpoints/" in p for p in problems), problems
