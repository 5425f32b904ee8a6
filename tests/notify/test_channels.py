"""Channels: each configured channel type renders its own body."""

from __future__ import annotations

import json
import time

from recallwatch.notify.channels import render
from tests.helpers.alerts import regression_alert


def test_render_per_channel_type() -> None:
    from recallwatch.config import AlertmanagerChannel

    am = AlertmanagerChannel(type="alertmanager", name="am", url="http://127.0.0.1:9093")
    body = json.loads(render(am, regression_alert(), "firing", time.time()))
    assert body[0]["labels"]["alertname"] == "RecallRegressionAfterMiningChange"
