"""Notification channels: one module per channel ``type`` of the configuration, registered by it.

Importing this package imports every module in it, so each built-in channel type registers
itself (``channels.base.register``); ``render`` and ``target_for`` find a configured channel's
kind by its ``type``. A new channel type is a new module here plus its config model in
``config.py`` (see ``channels.base``).

Built-in types: ``slack``, ``webhook``, ``alertmanager``.
"""

from __future__ import annotations

import importlib
import pkgutil

from recallwatch.notify.channels.alertmanager import AlertmanagerTarget
from recallwatch.notify.channels.base import (
    CHANNEL_KINDS,
    ChannelConfig,
    ChannelKind,
    refresh_interval,
    register,
    render,
    target_for,
)
from recallwatch.notify.channels.slack import SlackTarget
from recallwatch.notify.channels.webhook import WebhookTarget

__all__ = [
    "CHANNEL_KINDS",
    "AlertmanagerTarget",
    "ChannelConfig",
    "ChannelKind",
    "SlackTarget",
    "WebhookTarget",
    "refresh_interval",
    "register",
    "render",
    "target_for",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
