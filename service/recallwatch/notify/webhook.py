"""Generic JSON webhooks: a versioned body, signed per the Standard Webhooks specification.

The body (schema version 1, ``docs/alerting.md`` documents every field)::

    {"type": "alert.firing" | "alert.repeat" | "alert.resolved" | "test",
     "version": 1,
     "timestamp": "2026-11-27T01:02:03.456Z",   # when the message was decided
     "data": { ...Alert.as_dict()... }}

On ``alert.resolved``, ``data.resolution`` says what resolved the alert (the checkpoint, its
metric against the same baseline and the test), and ``summary``/``description`` are its words.

Signing (https://www.standardwebhooks.com/): three headers,

- ``webhook-id``: the message id, the same on every retry (receivers deduplicate on it);
- ``webhook-timestamp``: the attempt's Unix time in seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

The key is the secret with an optional ``whsec_`` prefix removed, base64-decoded, as the
specification and its reference library do (a secret that is not base64 is refused when the config
loads). ``verify`` is the receiver's side: it
checks the timestamp is within ``tolerance`` seconds of now and that one of the space-separated
signatures matches, in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from recallwatch.records.alert import Alert, Event, iso

__all__ = [
    "SCHEMA_VERSION",
    "WebhookVerificationError",
    "secret_key",
    "sign",
    "signature_headers",
    "verify",
    "webhook_body",
]

SCHEMA_VERSION = 1
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """A webhook delivery whose signature or timestamp does not verify (answer 401)."""


def webhook_body(alert: Alert, event: Event, decided_at: float) -> bytes:
    """The JSON body of a webhook message (compact, UTF-8), schema version 1."""
    doc: dict[str, Any] = {
        "type": "test" if event == "test" else f"alert.{event}",
        "version": SCHEMA_VERSION,
        "timestamp": iso(decided_at),
        "data": alert.as_dict(),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a signing secret: base64-decoded after an optional ``whsec_`` prefix."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "the signing secret must be base64 (optionally prefixed with whsec_)"
        ) from exc
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of a message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str | None, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (no signature without a secret)."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret is not None:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a received webhook's signature and timestamp; return its ``webhook-id``.

    ``headers`` may be any case-insensitive or plain mapping (header names are matched
    case-insensitively). Raises ``WebhookVerificationError`` saying what is wrong.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lower
    ]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    msg_id, ts_text, signatures = (
        lower["webhook-id"],
        lower["webhook-timestamp"],
        lower["webhook-signature"],
    )
    try:
        timestamp = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is {now - timestamp:+.0f} s from now (tolerance {tolerance:g} s)"
        )
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise WebhookVerificationError("no matching v1 signature")
