"""``recallwatch notify-test`` against real receivers, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from recallwatch.notify.webhook import verify
from tests.helpers.processes import REPO
from tests.helpers.receivers import Receiver, Reply, always, first

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def notify_test(
    tmp_path: Path, channel: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    doc = {
        "heldout": [{"name": "h", "path": str(tmp_path / "heldout")}],
        "runs": [{"name": "r", "directory": str(tmp_path / "run")}],
        "notifications": {
            "channels": [
                {"name": "slack", "type": "slack", "webhook_url_env": "T_SLACK"},
                {"name": "hook", "type": "webhook", "url_env": "T_HOOK", "secret_env": "T_SECRET"},
            ]
        },
    }
    config = tmp_path / "recallwatch.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recallwatch.cli",
            "notify-test",
            "--channel",
            channel,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        check=False,
    )


def test_notify_test_sends_signed_messages_and_reports(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    slack = receiver(first(1, Reply(500)))
    hook = receiver()
    env = {
        "T_SLACK": slack.url + "/services/T/B/secretpath",
        "T_HOOK": hook.url + "/hook",
        "T_SECRET": SECRET,
    }
    done = notify_test(tmp_path, "slack", env)
    assert done.returncode == 0, done.stderr
    assert "delivered to slack (slack) in 2 attempts, HTTP 200" in done.stdout
    assert "secretpath" not in done.stdout + done.stderr
    payload = slack.received()[-1].json()
    assert payload["text"] and payload["blocks"]
    done = notify_test(tmp_path, "hook", env)
    assert done.returncode == 0, done.stderr
    (got,) = hook.received()
    assert verify(SECRET, got.headers, got.body, now=time.time()).startswith("msg_")
    assert json.loads(got.body)["type"] == "test"


def test_notify_test_failures(tmp_path: Path, receiver: Callable[..., Receiver]) -> None:
    gone = receiver(always(Reply(404, body=b"no_service")))
    env = {"T_SLACK": gone.url, "T_HOOK": gone.url, "T_SECRET": SECRET}
    done = notify_test(tmp_path, "slack", env)
    assert done.returncode == 1
    assert "not delivered to slack (slack) after 1 attempt: HTTP error 404: no_service" in (
        done.stdout
    )
    done = notify_test(tmp_path, "nope", env)
    assert done.returncode == 2
    assert "no channel named 'nope' (known: slack, hook)" in done.stderr
