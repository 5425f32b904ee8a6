"""What a notification channel is: a plugin for one channel ``type`` of the config, and a registry.

A channel type is a ``ChannelKind`` subclass registered under its config ``type`` with
``@register``; ``render`` and ``target_for`` dispatch on ``channel.type`` (no ``isinstance``
chain). A kind does two things for a configured channel:

- ``render``: the body of an alert's message, rendered once, when it is decided, and stored in the
  outbox, so every retry sends the same bytes;
- ``refresh_interval``: for a receiver that resolves a firing alert by itself unless it is re-sent
  (Alertmanager), how often ``alerting.resend`` re-sends it (such a channel gets no ``repeat``);
- ``target``: the delivery target (``notify.delivery.Target``) whose ``request`` computes what
  changes per attempt (the Standard Webhooks timestamp and signature, the Alertmanager bearer
  token, a firing Alertmanager alert's ``endsAt``).

**Adding a channel type** is one new module in ``notify/channels/`` (a registered ``ChannelKind``
subclass; modules of this package are imported when it is) plus its config model in ``config.py``
(a ``_Channel`` subclass with ``type: Literal["<type>"]``, added to the ``Channel`` union).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import SecretStr

from recallwatch.errors import ConfigError
from recallwatch.notify.alertmanager import DEFAULT_RESEND_SECONDS
from recallwatch.notify.delivery import Target
from recallwatch.records.alert import Alert, Event

__all__ = [
    "CHANNEL_KINDS",
    "JSON",
    "USER_AGENT",
    "ChannelConfig",
    "ChannelKind",
    "refresh_interval",
    "register",
    "render",
    "secret_of",
    "target_for",
]

JSON = "application/json"
USER_AGENT = "recallwatch-notify/1"


class ChannelConfig(Protocol):
    """What every channel's config model has (``config._Channel``)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    def secret(self, name: str) -> SecretStr | None:
        """The resolved secret ``name`` (``None`` when optional and not configured)."""
        ...


ConfigT = TypeVar("ConfigT", bound=ChannelConfig)
KindT = TypeVar("KindT", bound="type[ChannelKind[Any]]")


def secret_of(channel: ChannelConfig, name: str) -> str | None:
    """The value of a channel's resolved secret ``name`` (None when not configured)."""
    value = channel.secret(name)
    return None if value is None else value.get_secret_value()


class ChannelKind(ABC, Generic[ConfigT]):
    """One channel type: subclass, set ``type``, override ``render`` and ``target``, register."""

    #: The config ``type`` this class delivers for (the registry key).
    type: ClassVar[str]

    def refresh_interval(self, channel: ConfigT) -> float | None:
        """How often a firing alert is re-sent (``refresh``) to a receiver that resolves it by
        itself otherwise (Alertmanager's ``endsAt``); None: it gets ``repeat`` messages instead."""
        return None

    @abstractmethod
    def render(
        self, channel: ConfigT, alert: Alert, event: Event, now: float, *, resend_interval: float
    ) -> bytes:
        """The body of ``alert``'s ``event`` message for ``channel``."""

    @abstractmethod
    def target(self, channel: ConfigT) -> Target:
        """The delivery target of a configured channel (secrets resolved by the config)."""


#: Channel kinds by config ``type``.
CHANNEL_KINDS: dict[str, type[ChannelKind[Any]]] = {}


def register(cls: KindT) -> KindT:
    """Class decorator: register a channel kind under its ``type``."""
    existing = CHANNEL_KINDS.get(cls.type)
    if existing is not None and existing is not cls:
        raise ValueError(f"channel type {cls.type!r} is already registered by {existing.__name__}")
    CHANNEL_KINDS[cls.type] = cls
    return cls


def _kind(channel: ChannelConfig) -> ChannelKind[Any]:
    cls = CHANNEL_KINDS.get(channel.type)
    if cls is None:
        raise ConfigError(
            [
                (
                    f"notifications.channels.{channel.name}.type",
                    f"no channel type {channel.type!r} is registered "
                    f"(known: {', '.join(sorted(CHANNEL_KINDS))})",
                )
            ]
        )
    return cls()


def render(
    channel: ChannelConfig,
    alert: Alert,
    event: Event,
    now: float,
    *,
    resend_interval: float = DEFAULT_RESEND_SECONDS,
) -> bytes:
    """The body of ``alert``'s ``event`` message for ``channel``."""
    return _kind(channel).render(channel, alert, event, now, resend_interval=resend_interval)


def refresh_interval(channel: ChannelConfig) -> float | None:
    """How often a firing alert is re-sent to ``channel``; None: not re-sent, but repeated."""
    return _kind(channel).refresh_interval(channel)


def target_for(channel: ChannelConfig) -> Target:
    """The delivery target of a configured channel (secrets resolved by the config)."""
    return _kind(channel).target(channel)
