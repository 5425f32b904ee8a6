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


def test_every_configured_channel_type_has_a_registered_kind() -> None:
    from typing import get_args

    from recallwatch.config import Channel
    from recallwatch.notify.channels import CHANNEL_KINDS

    (union, *_) = get_args(Channel)
    types = {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}
    assert types == set(CHANNEL_KINDS) == {"slack", "webhook", "alertmanager"}


def test_only_alertmanager_channels_are_refreshed() -> None:
    from recallwatch.config import AlertmanagerChannel, SlackChannel
    from recallwatch.notify.channels import refresh_interval

    am = AlertmanagerChannel(
        type="alertmanager", name="am", url="http://127.0.0.1:9093", resend_interval_seconds=75
    )
    assert refresh_interval(am) == 75
    slack = SlackChannel.model_construct(type="slack", name="s")
    assert refresh_interval(slack) is None
