"""Read-only commands read only the secrets they use: check-config, report, notify-test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from recallwatch.cli import main
from recallwatch.store import Store
from tests.helpers.receivers import Receiver
from tests.web import helpers as web_helpers

small_store = web_helpers.small_store  # a run with three evaluated checkpoints (a fixture)

#: Secret variables this config names; the tests set some, never all.
SECRET_VARS = ("RO_SLACK", "RO_HOOK", "RO_WEB_TOKEN", "RO_METRICS_TOKEN")


def config_with_channels(tmp_path: Path, store: Path) -> Path:
    """A config with two channels and both HTTP tokens, each a secret from the environment."""
    heldout = tmp_path / "heldout"
    (heldout / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (heldout / name).write_text("")
    doc: dict[str, Any] = {
        "store": {"path": str(store)},
        "heldout": [{"name": "synth", "path": str(heldout)}],
        "runs": [{"name": "demo", "directory": str(tmp_path)}],
        "evaluation": {"encoder": "precomputed"},
        "http": {"web_token_env": "RO_WEB_TOKEN", "metrics_token_env": "RO_METRICS_TOKEN"},
        "notifications": {
            "channels": [
                {"name": "slack", "type": "slack", "webhook_url_env": "RO_SLACK"},
                {"name": "hook", "type": "webhook", "url_env": "RO_HOOK"},
            ]
        },
    }
    path = tmp_path / "recallwatch.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment where none of the config's secret variables is set."""
    for var in SECRET_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_check_config_reports_what_serve_would_lack_and_passes(
    tmp_path: Path, no_secrets: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with_channels(tmp_path, tmp_path / "rw.db")
    no_secrets.setenv("RO_HOOK", "https://hooks.invalid/x")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{config}: valid" in out
    missing = [ln for ln in out.splitlines() if "(serve needs it)" in ln]
    assert missing == [
        "warning: http.web_token_env: environment variable RO_WEB_TOKEN is not set or empty "
        "(serve needs it)",
        "warning: http.metrics_token_env: environment variable RO_METRICS_TOKEN is not set or "
        "empty (serve needs it)",
        "warning: notifications.channels.0.webhook_url_env: environment variable RO_SLACK is not "
        "set or empty (serve needs it)",
    ]
    # In the daemon's own environment the same file must have every secret, as serve does.
    assert main(["check-config", "--require-secrets", str(config)]) == 2
    err = capsys.readouterr().err
    assert "notifications.channels.0.webhook_url_env: environment variable RO_SLACK" in err
    # A structural error is still an error without any secret.
    config.write_text(config.read_text().replace("webhook_url_env", "webhook_url"))
    assert main(["check-config", str(config)]) == 2
    assert "secrets come from webhook_url_env" in capsys.readouterr().err


def test_report_needs_no_secret(
    tmp_path: Path,
    small_store: Store,
    no_secrets: pytest.MonkeyPatch,
) -> None:
    config = config_with_channels(tmp_path, small_store.path)
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(config), "--run", "demo", "--out", str(out)]) == 0
    assert 'id="ckpt-checkpoint-300"' in out.read_text(encoding="utf-8")


def test_notify_test_needs_only_its_channels_secrets(
    tmp_path: Path,
    no_secrets: pytest.MonkeyPatch,
    receiver: Callable[..., Receiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_with_channels(tmp_path, tmp_path / "rw.db")
    slack = receiver()
    no_secrets.setenv("RO_SLACK", slack.url + "/services/T/B/x")
    assert main(["notify-test", "--channel", "slack", "--config", str(config)]) == 0
    assert "delivered to slack (slack)" in capsys.readouterr().out
    assert len(slack.received()) == 1
    # The other channel's secret is what it lacks, by its field.
    assert main(["notify-test", "--channel", "hook", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "notifications.channels.1" in err and "RO_HOOK is not set" in err
