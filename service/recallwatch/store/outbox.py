"""The notification outbox: messages waiting for delivery, their attempts, and failure counters.

``SqliteOutbox`` implements the ``Outbox`` protocol (``recallwatch.records.outbox``) that the
delivery dispatcher reads: ``next_pending`` and ``record_attempt``. Messages are enqueued by the
alert ledger (``enqueue_messages``), in the transaction that writes their alerts' states.

Alertmanager re-sends (event ``"refresh"``) keep a firing alert alive in Alertmanager; they are
bookkeeping, not notifications, so two rules keep them from piling up (``enqueue_messages``):
a re-send is not enqueued while another of the same alert and channel is still pending, and
delivered re-sends are deleted ``REFRESH_RETENTION_SECONDS`` after a newer message. The failure
counters (``notification_counters``) are kept apart from the rows so they never go down.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from recallwatch.records.outbox import AttemptResult, MessageState, Outbox, OutboxMessage
from recallwatch.store.db import Database
from recallwatch.store.rows import NewMessage

__all__ = ["REFRESH_RETENTION_SECONDS", "SqliteOutbox", "enqueue_messages"]

#: How long a delivered Alertmanager re-send is kept once a newer message is enqueued: worth
#: nothing once the next one went out, kept a while for inspection.
REFRESH_RETENTION_SECONDS = 3600.0


def enqueue_messages(conn: sqlite3.Connection, messages: Sequence[NewMessage]) -> None:
    """Enqueue messages inside the caller's transaction (idempotent per message and channel).

    Applies the re-send rules: a ``refresh`` message is dropped while another ``refresh`` of the
    same alert and channel is pending, and delivered ``refresh`` messages older than the newest
    enqueued message by ``REFRESH_RETENTION_SECONDS`` are deleted.
    """
    for m in messages:
        if m.event == "refresh" and _refresh_pending(conn, m.alert_id, m.channel):
            continue
        conn.execute(
            "INSERT OR IGNORE INTO outbox(message_id, alert_id, channel, rule, event, "
            "body, state, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (
                m.message_id,
                m.alert_id,
                m.channel,
                m.rule,
                m.event,
                m.body,
                m.created_at,
                m.created_at,
            ),
        )
    newest = max((m.created_at for m in messages), default=0.0)
    conn.execute(
        "DELETE FROM outbox WHERE event = 'refresh' AND state = 'delivered' AND delivered_at < ?",
        (newest - REFRESH_RETENTION_SECONDS,),
    )


def _refresh_pending(conn: sqlite3.Connection, alert_id: str, channel: str) -> bool:
    """Whether an Alertmanager re-send of this alert is already waiting on this channel."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE alert_id = ? AND channel = ? "
        "AND event = 'refresh' AND state = 'pending'",
        (alert_id, channel),
    ).fetchone()
    return row is not None


def _count(conn: sqlite3.Connection, channel: str, name: str, n: int) -> None:
    conn.execute(
        "INSERT INTO notification_counters(channel, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT(channel, name) DO UPDATE SET value = value + excluded.value",
        (channel, name, n),
    )


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        message_id=row["message_id"],
        alert_id=row["alert_id"],
        channel=row["channel"],
        rule=row["rule"],
        event=row["event"],
        body=bytes(row["body"]),
        created_at=row["created_at"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        delivered_at=row["delivered_at"],
    )


class SqliteOutbox:
    """The stored outbox: what the dispatcher delivers, and what the exporter counts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def deliveries(self, alert_id: str) -> list[OutboxMessage]:
        """Every outbox message of an alert, oldest first (Alertmanager re-sends left out)."""
        rows = self._db.query(
            "SELECT * FROM outbox WHERE alert_id = ? AND event != 'refresh' ORDER BY id",
            (alert_id,),
        )
        return [_message(r) for r in rows]

    def next_pending(self, channel: str) -> OutboxMessage | None:
        """The oldest pending message of a channel."""
        rows = self._db.query(
            "SELECT * FROM outbox WHERE channel = ? AND state = 'pending' ORDER BY id LIMIT 1",
            (channel,),
        )
        return _message(rows[0]) if rows else None

    def record_attempt(
        self,
        message: OutboxMessage,
        result: AttemptResult,
        *,
        now: float,
        state: MessageState,
        next_attempt_at: float,
    ) -> None:
        """Store one delivery attempt's result and the message's new state (and count them)."""
        with self._db.transaction() as conn:
            if result.outcome != "ok":
                _count(conn, message.channel, "failed_attempts", 1)
            if state == "failed":
                _count(conn, message.channel, "failed_messages", 1)
            conn.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1, "
                "failures = failures + ?, next_attempt_at = ?, last_attempt_at = ?, "
                "last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (
                    state,
                    int(result.outcome != "ok"),
                    next_attempt_at,
                    now,
                    result.status,
                    result.error,
                    now if state == "delivered" else None,
                    message.id,
                ),
            )

    def fail_pending_except(self, channels: Sequence[str], now: float) -> int:
        """Fail pending messages of channels not in ``channels`` (removed from the config)."""
        marks = ",".join("?" for _ in channels) or "''"
        with self._db.transaction() as conn:
            gone = conn.execute(
                "SELECT channel, COUNT(*) FROM outbox "
                f"WHERE state = 'pending' AND channel NOT IN ({marks}) GROUP BY channel",
                tuple(channels),
            ).fetchall()
            for channel, n in gone:
                _count(conn, channel, "failed_messages", int(n))
            return conn.execute(
                "UPDATE outbox SET state = 'failed', "
                "last_error = 'the channel is no longer configured', last_attempt_at = ? "
                f"WHERE state = 'pending' AND channel NOT IN ({marks})",
                (now, *channels),
            ).rowcount

    def notifications_delivered(self) -> dict[tuple[str, str], int]:
        """Delivered notifications per (channel, rule) (Alertmanager re-sends not counted)."""
        rows = self._db.query(
            "SELECT channel, rule, COUNT(*) FROM outbox WHERE state = 'delivered' "
            "AND event != 'refresh' GROUP BY channel, rule"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def notification_failures(self) -> dict[str, int]:
        """Failed delivery attempts per channel, retried or terminal (monotonic)."""
        return self._counters("failed_attempts")

    def notifications_failed(self) -> dict[str, int]:
        """Messages that failed for good (terminal, expired, channel removed) per channel."""
        return self._counters("failed_messages")

    def _counters(self, name: str) -> dict[str, int]:
        rows = self._db.query(
            "SELECT channel, value FROM notification_counters WHERE name = ? ORDER BY channel",
            (name,),
        )
        return {r[0]: int(r[1]) for r in rows}

    def outbox_pending(self) -> dict[str, int]:
        """Messages waiting for delivery, per channel."""
        rows = self._db.query(
            "SELECT channel, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY channel"
        )
        return {r[0]: int(r[1]) for r in rows}


if TYPE_CHECKING:

    def _implements_the_outbox_protocol(outbox: SqliteOutbox) -> Outbox:
        return outbox  # mypy checks that SqliteOutbox is a delivery ``Outbox``
