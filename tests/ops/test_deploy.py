"""The Dockerfile and deploy/ (Compose, Kubernetes, Alertmanager): what can be checked without a
Docker engine or a cluster. The image is never built here (that needs a network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("precomputed", "st")
UID = 10001
KUBERNETES_VERSION = "1.30.0"


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile_lines() -> list[tuple[str, str]]:
    """(INSTRUCTION, args) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile() -> dict[str, list[str]]:
    """Instructions of the Dockerfile: {INSTRUCTION: [args, ...]}."""
    out: dict[str, list[str]] = {}
    for word, rest in dockerfile_lines():
        out.setdefault(word, []).append(rest)
    return out


def test_dockerfile_copies_what_the_install_needs() -> None:
    df = dockerfile()
    copied = {part for c in df["COPY"] for part in c.split()[:-1]}
    assert {"pyproject.toml", "README.md", "service", "deploy/docker/requirements.py"} <= copied
    assert df["EXPOSE"] == ["9464"]
    # The health check's command is valid Python.
    health = df["HEALTHCHECK"][0]
    code = re.search(r'python -c "(.+)"$', health)
    assert code is not None
    compile(code.group(1), "HEALTHCHECK", "exec")
    # .dockerignore keeps out nothing the build copies.
    ignored = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for path in copied - {"--from=builder", "/opt/venv"}:
        assert not any(path == i or path.startswith(i.rstrip("/") + "/") for i in ignored), path


def test_dockerfile_is_multi_stage_on_one_pinned_base() -> None:
    froms = dockerfile()["FROM"]
    assert len(froms) >= 2
    images = {f.split()[0] for f in froms if not f.split()[0].startswith(("builder", "runtime"))}
    assert len(images) == 1, images  # the venv is copied between stages: same Python
    [image] = images
    # An exact patch version and distribution, never a moving tag.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    assert any(f.endswith(" AS builder") for f in froms)
    assert any("--from=builder" in c for c in dockerfile()["COPY"])


def test_dockerfile_installs_dependencies_before_copying_the_code() -> None:
    """A code change must not reinstall numpy, faiss and torch: the layer that installs the
    requirements comes before `COPY service`, and copies nothing but pyproject.toml."""
    lines = dockerfile_lines()
    copy_code = next(i for i, (w, a) in enumerate(lines) if w == "COPY" and "service" in a)
    install_deps = next(
        i for i, (w, a) in enumerate(lines) if w == "RUN" and "pip install -r requirements.txt" in a
    )
    assert install_deps < copy_code
    copies_before = [a for w, a in lines[:install_deps] if w == "COPY"]
    assert copies_before == ["pyproject.toml deploy/docker/requirements.py ./"]
    # After the code, recallwatch alone (its dependencies are there already).
    assert any(w == "RUN" and "pip install --no-deps ." in a for w, a in lines[copy_code:])


def test_dockerfile_runs_as_a_numeric_user_and_has_an_st_variant() -> None:
    df = dockerfile()
    [user] = df["USER"]
    assert re.fullmatch(r"\d+(:\d+)?", user) and int(user.split(":")[0]) == UID
    assert any(a.startswith("EXTRAS=") for a in df["ARG"])
    assert any("$EXTRAS" in r and "requirements.py" in r for r in df["RUN"])


def test_requirements_helper_lists_pyprojects_dependencies() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    helper = DEPLOY / "docker" / "requirements.py"
    for extras, expected in (
        ("", project["dependencies"]),
        ("st", project["dependencies"] + project["optional-dependencies"]["st"]),
    ):
        out = subprocess.run(
            [sys.executable, str(helper), extras],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.split("\n")[:-1] == expected
    bad = subprocess.run(
        [sys.executable, str(helper), "nosuchextra"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "unknown extra" in bad.stderr


@pytest.mark.slow
def test_dockerfile_install_and_entrypoint_in_a_fresh_venv(tmp_path: Path) -> None:
    """The image's two install steps in a fresh venv, then its ENTRYPOINT + CMD (with --help)."""
    df = dockerfile()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "deploy/docker/requirements.py"):
        shutil.copy(REPO / name, src / Path(name).name)
    shutil.copytree(
        REPO / "service",
        src / "service",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    reqs = subprocess.run(
        [str(py), "requirements.py", ""], cwd=src, capture_output=True, text=True, check=True
    )
    (src / "requirements.txt").write_text(reqs.stdout)
    for step in (["-r", "requirements.txt"], ["--no-deps", "."]):
        done = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", *step],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads(df["ENTRYPOINT"][0])[0]
    cmd = json.loads(df["CMD"][0])
    out = subprocess.run(
        [str(env_dir / "bin" / entry), *cmd, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
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


# -- check-config -----------------------------------------------------------------------------

#: Run check-config as the default image would: sentence-transformers absent.
WITHOUT_ST = (
    "import sys; sys.modules['sentence_transformers'] = None; "
    "from recallwatch.cli import main; sys.exit(main(sys.argv[1:]))"
)
WITH_ST = "import sys; from recallwatch.cli import main; sys.exit(main(sys.argv[1:]))"


def check_config_problems(
    text: str, tmp_path: Path, env: dict[str, str] | None = None, *, without_st: bool = False
) -> list[str]:
    """Run ``recallwatch check-config`` on a config text; return its indented problem lines."""
    (tmp_path / "recallwatch.yaml").write_text(text)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_ST if without_st else WITH_ST,
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


def only_missing_pod_paths(problems: list[str]) -> bool:
    """Paths of the container (/heldout, /runs, /var/lib) do not exist here: only those may fail."""
    return all(re.search(r"/heldout|/runs|/var/lib/recallwatch", p) for p in problems)


def test_readme_minimal_config_passes_check_config(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("A minimal `recallwatch.yaml`", 1)[1].split("```yaml\n", 1)[1]
    env = {**os.environ, "RECALLWATCH_SLACK_WEBHOOK_URL": "https://hooks.invalid/T/B/x"}
    problems = check_config_problems(block.split("```", 1)[0], tmp_path, env)
    # The README's paths (/data/..., /checkpoints/...) do not exist here: only those may fail.
    assert problems  # the held-out path is missing, so it must say so
    assert all("/data/" in p or "/checkpoints/" in p for p in problems), problems


def test_without_st_check_config_rejects_the_st_encoder(tmp_path: Path) -> None:
    """The simulation of the default image works: `encoder: st` fails there, as in the pod."""
    text = (KUBERNETES / "overlays" / "precomputed" / "recallwatch.yaml").read_text()
    st = text.replace("encoder: precomputed", "encoder: st")
    problems = check_config_problems(st, tmp_path, without_st=True)
    assert any("sentence-transformers" in p for p in problems), problems


# -- Compose ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return doc


def test_compose_mounts_files_that_exist_and_keeps_history_in_volumes() -> None:
    doc = compose()
    named = set(doc["volumes"])
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("${"):
                continue  # the user's directories, from .env
            if source.startswith((".", "/")):
                assert (COMPOSE / source).exists(), (name, source)
            else:
                assert source in named, (name, source)
    # Everything with state keeps it across `docker compose down`.
    for service, path in (
        ("recallwatch", "/var/lib/recallwatch"),
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("grafana", "/var/lib/grafana"),
    ):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in doc["services"][service]["volumes"]}
        assert mounts.get(path) in named, (service, path)
    build = doc["services"]["recallwatch"]["build"]
    assert (COMPOSE / build["context"] / "Dockerfile").is_file()
    assert set(build["args"]) <= {a.split("=")[0] for a in dockerfile()["ARG"]}


def test_compose_passes_secrets_from_the_environment_only() -> None:
    env = compose()["services"]["recallwatch"]["environment"]
    assert env and all(re.fullmatch(r"\$\{[A-Z_]+(:?-[^}]*)?\}", v) for v in env.values()), env
    example = (COMPOSE / ".env.example").read_text()
    for key in env:
        assert re.search(rf"^{key}=", example, re.M), key
    secret = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text())
    assert set(env) == set(secret["stringData"])


def test_compose_ships_its_recallwatch_yaml_and_it_passes_check_config(tmp_path: Path) -> None:
    mounts = compose()["services"]["recallwatch"]["volumes"]
    [config] = [v for v in mounts if v.split(":")[1] == "/etc/recallwatch/recallwatch.yaml"]
    source = COMPOSE / config.split(":")[0]
    assert source.is_file()
    problems = check_config_problems(source.read_text(), tmp_path, without_st=True)
    assert only_missing_pod_paths(problems), problems
    doc = yaml.safe_load(source.read_text())
    assert doc["notifications"]["dashboard_url"].endswith("/d/recallwatch-overview")


def test_compose_alertmanager_config_is_valid_and_carries_the_inhibit_rule(
    tmp_path: Path,
) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not found: apt-get install -y prometheus-alertmanager")
    out = subprocess.run(
        [amtool, "check-config", str(COMPOSE / "alertmanager.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    snippet = yaml.safe_load((DEPLOY / "alertmanager-inhibit.yml").read_text())
    config = yaml.safe_load((COMPOSE / "alertmanager.yml").read_text())
    assert config["inhibit_rules"] == snippet["inhibit_rules"]
    # The snippet on its own, merged into a minimal configuration, is valid too.
    minimal = {"route": {"receiver": "r"}, "receivers": [{"name": "r"}], **snippet}
    (tmp_path / "am.yml").write_text(yaml.safe_dump(minimal))
    out = subprocess.run(
        [amtool, "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_example_is_valid_and_scrapes_the_job_the_rules_select(
    tmp_path: Path,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install -y prometheus")
    # Point the rule file at the repository's copy (the compose file mounts it at that path).
    cfg = (
        (COMPOSE / "prometheus.yml")
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
    jobs = {j["job_name"] for j in yaml.safe_load(cfg)["scrape_configs"]}
    rules = (REPO / "alerts" / "recallwatch.rules.yml").read_text()
    [selector] = set(re.findall(r"up\{([^}]*)\}", rules))
    assert selector in {f'job="{j}"' for j in jobs}


# -- Alertmanager: both alert paths, one notification -----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager with the Compose example's configuration (receiver unreachable)."""
    exe = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if exe is None:
        pytest.skip("Alertmanager not found: apt-get install -y prometheus-alertmanager")
    port, cluster = free_port(), free_port()
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={COMPOSE / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--cluster.listen-address=127.0.0.1:{cluster}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("Alertmanager did not start")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_inhibit_rule_mutes_the_prometheus_copy_of_a_daemon_alert(alertmanager: str) -> None:
    """The same regression from both paths: Alertmanager notifies the daemon's alert only."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    times = {
        "startsAt": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "endsAt": (now + timedelta(minutes=5)).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    event = {"alertname": "RecallRegressionAfterMiningChange", "run": "r", "severity": "critical"}
    # As alerts/recallwatch.rules.yml labels it (Prometheus adds no job: the rule aggregates).
    from_prometheus = {
        **event,
        "dataset": "scifact",
        "k": "10",
        "service": "recallwatch",
        "source": "prometheus",
    }
    # As recallwatch.notify.alertmanager labels it.
    from_daemon = {
        **event,
        "dataset": "scifact",
        "k": "10",
        "service": "recallwatch",
        "rule": "recall-drop-after-mining-change",
        "baseline": "checkpoint-100",
    }
    # Another run's Prometheus alert: not inhibited.
    other = {**from_prometheus, "run": "other"}
    body = json.dumps([{"labels": a, **times} for a in (from_prometheus, from_daemon, other)])
    req = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).close()
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as resp:
            alerts = json.load(resp)
        state = {
            (a["labels"].get("source", "daemon"), a["labels"]["run"]): a["status"] for a in alerts
        }
        if len(state) == 3 and state[("prometheus", "r")]["inhibitedBy"]:
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state[("daemon", "r")]["state"] == "active"
    assert state[("prometheus", "r")]["state"] == "suppressed"
    assert state[("prometheus", "other")]["state"] == "active"


# -- Kubernetes -------------------------------------------------------------------------------


def kubectl() -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl not found (it renders the kustomize overlays)")
    return exe


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def test_overlays_render_every_object(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    assert sorted(d["kind"] for d in docs) == sorted(
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PrometheusRule",
        ]
    )


#: Schemas for the two Prometheus-operator CRDs, which kubernetes-validate does not ship: the
#: fields the operator needs, as its CRDs (monitoring.coreos.com/v1) define them.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object"}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": {"type": "string"},
                                            "labels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                            "annotations": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


def test_rendered_objects_validate_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Built-in kinds against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: no
    unknown fields); the two CRDs against the schemas above (kubernetes-validate has none)."""
    kv = pytest.importorskip("kubernetes_validate")
    jsonschema = pytest.importorskip("jsonschema")  # a dependency of kubernetes-validate

    _, docs = rendered
    for doc in docs:
        if doc["kind"] in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
        else:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
    secret = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text())
    kv.validate(secret, KUBERNETES_VERSION, strict=True)


def test_pod_meets_the_restricted_pod_security_standard(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """The checks of the "restricted" profile (kubernetes.io/docs/concepts/security/
    pod-security-standards), plus a read-only root filesystem."""
    _, docs = rendered
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == UID
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
    allowed_volumes |= {"persistentVolumeClaim", "projected", "secret"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed_volumes, volume
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert sc.get("runAsNonRoot", psc["runAsNonRoot"]) is True
        assert sc.get("runAsUser", psc["runAsUser"]) != 0
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["readOnlyRootFilesystem"] is True
        assert not sc.get("privileged")
        assert not any("hostPort" in p for p in c.get("ports", []))
    # The image's USER is the same numeric uid.
    assert dockerfile()["USER"] == [f"{UID}:{UID}"]


def test_pod_has_probes_resources_and_writable_volumes(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, docs = rendered
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    pod = deploy["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The read-only root filesystem leaves the store (the PVC) and /tmp writable.
    pvc = one(docs, "PersistentVolumeClaim")
    data = volumes[mounts["/var/lib/recallwatch"]["name"]]
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert not mounts["/var/lib/recallwatch"].get("readOnly")
    # The ConfigMap (name hashed by kustomize) is the one mounted at RECALLWATCH_CONFIG.
    env = {e["name"]: e.get("value") for e in c["env"]}
    config_dir = os.path.dirname(env["RECALLWATCH_CONFIG"])
    cm = one(docs, "ConfigMap")
    assert volumes[mounts[config_dir]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    assert os.path.basename(env["RECALLWATCH_CONFIG"]) in cm["data"]
    # Webhook secrets come from the Secret example's name, optional until created.
    [ref] = [e["secretRef"] for e in c["envFrom"]]
    secret = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text())
    assert ref["name"] == secret["metadata"]["name"]
    # The image: the -st variant only in the st overlay.
    assert c["image"].endswith("-st") == (overlay == "st"), c["image"]
    assert not c["image"].endswith(":latest")
    # The WAL warning travels with the PVC.
    pvc_source = (KUBERNETES / "base" / "pvc.yaml").read_text()
    assert "WAL" in pvc_source and "NFS" in pvc_source


def test_rendered_config_passes_check_config_in_its_image(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """precomputed: as in the default image (no sentence-transformers); st: with it."""
    overlay, docs = rendered
    text = one(docs, "ConfigMap")["data"]["recallwatch.yaml"]
    encoder = yaml.safe_load(text)["evaluation"]["encoder"]
    spec = encoder if isinstance(encoder, str) else encoder["spec"]
    if overlay == "precomputed":
        assert spec == "precomputed"
        problems = check_config_problems(text, tmp_path, without_st=True)
    else:
        assert spec == "st"
        pytest.importorskip("sentence_transformers")
        problems = check_config_problems(text, tmp_path)
    assert only_missing_pod_paths(problems), problems
    links = yaml.safe_load(text)["notifications"]
    assert links["dashboard_url"].endswith("/d/recallwatch-overview")
    assert links["runbook_base_url"].startswith("https://")


def test_servicemonitor_scrapes_the_service_as_the_job_the_rules_select(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service")
    labels = svc["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    job = labels[sm["spec"]["jobLabel"]]
    rules = one(docs, "PrometheusRule")["spec"]["groups"]
    selectors = {
        s for g in rules for r in g["rules"] for s in re.findall(r"up\{([^}]*)\}", r["expr"])
    }
    assert selectors == {f'job="{job}"'}
    # Not also scraped through pod annotations (every run would be exported twice).
    pod_meta = one(docs, "Deployment")["spec"]["template"]["metadata"]
    assert not any(k.startswith("prometheus.io/") for k in pod_meta.get("annotations", {}))


def test_prometheusrule_is_the_rule_file(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    rules = yaml.safe_load((REPO / "alerts" / "recallwatch.rules.yml").read_text())
    assert one(docs, "PrometheusRule")["spec"]["groups"] == rules["groups"]


def test_no_leftover_single_file_manifest() -> None:
    assert not (KUBERNETES / "recallwatch.yaml").exists()
