"""The SQLite schema, as the list of migrations that builds it.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes version i to i + 1,
and ``Database.open`` runs each missing one in a transaction of its own. Add a migration, never
edit a released one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: list[list[str]] = [
    # 0 -> 1: the initial schema.
    [
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            directory TEXT NOT NULL,
            created_at REAL NOT NULL)""",
        """CREATE TABLE mining_configs (
            fingerprint TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            first_seen_at REAL NOT NULL)""",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            step INTEGER,
            state TEXT NOT NULL CHECK (state IN
                ('discovered', 'evaluating', 'evaluated', 'failed', 'skipped')),
            eval_key TEXT NOT NULL,
            mining_fingerprint TEXT REFERENCES mining_configs(fingerprint),
            mining_path TEXT,
            mining_error TEXT,
            completed_at REAL NOT NULL,
            discovered_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            state_reason TEXT,
            state_message TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (run_id, name))""",
        "CREATE INDEX checkpoints_by_state ON checkpoints(state, run_id)",
        """CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            dataset TEXT NOT NULL,
            encoder TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            metrics TEXT,
            timings TEXT,
            counts TEXT,
            outcomes BLOB,
            reason TEXT,
            message TEXT)""",
        """CREATE UNIQUE INDEX evaluations_once
            ON evaluations(checkpoint_id, dataset, encoder, config_hash) WHERE status = 'done'""",
        """CREATE TABLE stage_timings (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            stage TEXT NOT NULL,
            seconds REAL NOT NULL,
            recorded_at REAL NOT NULL)""",
        """CREATE TABLE fn_estimates (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            mining_fingerprint TEXT,
            config_hash TEXT NOT NULL,
            oracle TEXT NOT NULL,
            sample_size INTEGER NOT NULL,
            false_negatives INTEGER NOT NULL,
            estimate REAL NOT NULL,
            lower REAL NOT NULL,
            upper REAL NOT NULL,
            random_estimate REAL,
            amplification REAL,
            buckets TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (checkpoint_id, config_hash))""",
        # The regression decision per checkpoint (written by the alerting code).
        """CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            dataset TEXT NOT NULL,
            metric TEXT NOT NULL,
            k INTEGER NOT NULL,
            kind TEXT NOT NULL,
            baseline_checkpoint_id INTEGER REFERENCES checkpoints(id),
            value REAL NOT NULL,
            baseline_value REAL,
            p_value REAL,
            regressed INTEGER NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (checkpoint_id, dataset, metric, k, kind))""",
    ],
    # 1 -> 2: alerts and the notification outbox (written by the alerting code).
    [
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL,
            rule TEXT NOT NULL,
            run TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
            opened_at REAL NOT NULL,
            last_notified_at REAL NOT NULL,
            resolved_at REAL,
            repeats INTEGER NOT NULL DEFAULT 0,
            document TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE status = 'firing'",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            alert_id TEXT NOT NULL REFERENCES alerts(id),
            channel TEXT NOT NULL,
            rule TEXT NOT NULL,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_attempt_at REAL,
            last_status INTEGER,
            last_error TEXT,
            delivered_at REAL,
            UNIQUE (message_id, channel))""",
        "CREATE INDEX outbox_by_channel ON outbox(channel, state, id)",
        "CREATE INDEX outbox_by_alert ON outbox(alert_id, id)",
    ],
    # 2 -> 3: failed false-negative audits (counted, retried on the next checkpoint of the set).
    [
        """CREATE TABLE fn_audit_failures (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            mining_fingerprint TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            failed_at REAL NOT NULL)""",
        "CREATE INDEX fn_audit_failures_by_set ON fn_audit_failures(mining_fingerprint, id)",
    ],
    # 3 -> 4: monotonic notification counters per channel (outbox rows of Alertmanager re-sends are
    # deleted, so counting rows could go down), seeded from the outbox as it stands.
    [
        """CREATE TABLE notification_counters (
            channel TEXT NOT NULL,
            name TEXT NOT NULL CHECK (name IN ('failed_attempts', 'failed_messages')),
            value INTEGER NOT NULL,
            PRIMARY KEY (channel, name))""",
        """INSERT INTO notification_counters(channel, name, value)
            SELECT channel, 'failed_attempts', SUM(failures) FROM outbox GROUP BY channel
            HAVING SUM(failures) > 0""",
        """INSERT INTO notification_counters(channel, name, value)
            SELECT channel, 'failed_messages', COUNT(*) FROM outbox WHERE state = 'failed'
            GROUP BY channel""",
    ],
    # 4 -> 5: "queued again only to retry the false-negative audit" becomes a column of its own
    # (it was the pseudo-reason 'fn_retry' in state_reason, lost at the next state change).
    [
        "ALTER TABLE checkpoints ADD COLUMN audit_only INTEGER NOT NULL DEFAULT 0",
        """UPDATE checkpoints SET audit_only = 1, state_reason = NULL
            WHERE state_reason = 'fn_retry'""",
    ],
    # 5 -> 6: review labels of mined negatives (the /review pages and `recallwatch review`): one
    # label per reviewer and (mined set, query, document); a reviewer's new label replaces theirs.
    [
        """CREATE TABLE review_labels (
            id INTEGER PRIMARY KEY,
            mined_set TEXT NOT NULL,
            query_id TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            label TEXT NOT NULL CHECK (label IN ('relevant', 'not_relevant', 'unsure')),
            reviewer TEXT NOT NULL,
            labelled_at REAL NOT NULL,
            UNIQUE (mined_set, query_id, doc_id, reviewer))""",
        "CREATE INDEX review_labels_by_set ON review_labels(mined_set, labelled_at)",
    ],
    # 6 -> 7: the numeric precision an evaluation's encoder computed in (fp32, bf16, fp16; NULL
    # where recallwatch did not compute the embeddings: precomputed, python:). The st encoder's
    # evaluations stored before it were all fp32.
    [
        "ALTER TABLE evaluations ADD COLUMN precision TEXT",
        "UPDATE evaluations SET precision = 'fp32' WHERE status = 'done' AND encoder = 'st'",
    ],
    # 7 -> 8: indexes for every hot read (tests/store/test_query_plans.py checks their plans), and
    # a log of checkpoint changes kept by triggers in the writing transaction, so that readers
    # (the exporter's evaluated checkpoints) re-read only what changed since they last looked.
    [
        "CREATE INDEX IF NOT EXISTS evaluations_by_checkpoint ON evaluations(checkpoint_id, id)",
        """CREATE INDEX IF NOT EXISTS evaluations_failed ON evaluations(checkpoint_id, reason)
            WHERE status = 'failed'""",
        "CREATE INDEX IF NOT EXISTS checkpoints_by_step ON checkpoints(run_id, step, name)",
        "CREATE INDEX IF NOT EXISTS checkpoints_by_run ON checkpoints(run_id, id)",
        """CREATE INDEX IF NOT EXISTS fn_estimates_by_set
            ON fn_estimates(mining_fingerprint, config_hash, id)""",
        """CREATE INDEX IF NOT EXISTS fn_audit_failures_by_checkpoint
            ON fn_audit_failures(checkpoint_id, id)""",
        "CREATE INDEX IF NOT EXISTS fn_audit_failures_by_run ON fn_audit_failures(run_id, reason)",
        "CREATE INDEX IF NOT EXISTS alerts_by_opened ON alerts(opened_at DESC, id)",
        "CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox(state, channel, rule, event)",
        """CREATE TABLE IF NOT EXISTS checkpoint_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            checkpoint_id INTEGER NOT NULL)""",
        """CREATE TRIGGER IF NOT EXISTS checkpoint_changes_insert AFTER INSERT ON checkpoints BEGIN
            INSERT INTO checkpoint_changes(checkpoint_id) VALUES (NEW.id);
            DELETE FROM checkpoint_changes
                WHERE seq <= (SELECT MAX(seq) FROM checkpoint_changes) - 100000;
            END""",
        """CREATE TRIGGER IF NOT EXISTS checkpoint_changes_update AFTER UPDATE
            OF state, step, name, run_id ON checkpoints BEGIN
            INSERT INTO checkpoint_changes(checkpoint_id) VALUES (NEW.id);
            DELETE FROM checkpoint_changes
                WHERE seq <= (SELECT MAX(seq) FROM checkpoint_changes) - 100000;
            END""",
        """CREATE TRIGGER IF NOT EXISTS checkpoint_changes_delete AFTER DELETE ON checkpoints BEGIN
            INSERT INTO checkpoint_changes(checkpoint_id) VALUES (OLD.id);
            END""",
    ],
    # 8 -> 9: the source of each false-negative estimate ('audit': the audit's oracles; 'review':
    # the people's labels of /review, re-computed as they arrive), and its history: an estimate
    # from labels is a new row, the earlier ones stay (the table is rebuilt without its
    # UNIQUE (checkpoint_id, config_hash); the latest row of a checkpoint is its estimate).
    [
        """CREATE TABLE fn_estimates_v2 (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            mining_fingerprint TEXT,
            config_hash TEXT NOT NULL,
            oracle TEXT NOT NULL,
            sample_size INTEGER NOT NULL,
            false_negatives INTEGER NOT NULL,
            estimate REAL NOT NULL,
            lower REAL NOT NULL,
            upper REAL NOT NULL,
            random_estimate REAL,
            amplification REAL,
            buckets TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            source TEXT NOT NULL DEFAULT 'audit')""",
        """INSERT INTO fn_estimates_v2(id, checkpoint_id, mining_fingerprint, config_hash, oracle,
            sample_size, false_negatives, estimate, lower, upper, random_estimate, amplification,
            buckets, details, created_at)
            SELECT id, checkpoint_id, mining_fingerprint, config_hash, oracle, sample_size,
            false_negatives, estimate, lower, upper, random_estimate, amplification, buckets,
            details, created_at FROM fn_estimates""",
        "DROP TABLE fn_estimates",
        "ALTER TABLE fn_estimates_v2 RENAME TO fn_estimates",
        """CREATE INDEX IF NOT EXISTS fn_estimates_by_set
            ON fn_estimates(mining_fingerprint, config_hash, id)""",
        """CREATE INDEX IF NOT EXISTS fn_estimates_by_checkpoint
            ON fn_estimates(checkpoint_id, config_hash, source, id)""",
    ],
    # 9 -> 10: when each review label was taken back (the page's undo), so that the label
    # mirror and the store reconcile by the newest event after lost writes (web.review_mirror).
    [
        """CREATE TABLE IF NOT EXISTS review_removals (
            mined_set TEXT NOT NULL,
            query_id TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            removed_at REAL NOT NULL,
            PRIMARY KEY (mined_set, query_id, doc_id, reviewer))""",
    ],
    # 10 -> 11: held-out holes (docs/holes.md). Each evaluation's top-K document ids per query
    # (``evaluation.stored_rankings``; one compressed row per evaluation), so that its history
    # can be re-scored without re-encoding; and qrels overlay versions of a held-out set: the
    # labels accepted into it, version by version (the set's files are never edited).
    [
        """CREATE TABLE IF NOT EXISTS evaluation_rankings (
            evaluation_id INTEGER PRIMARY KEY REFERENCES evaluations(id),
            depth INTEGER NOT NULL,
            rankings BLOB NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS qrels_versions (
            id INTEGER PRIMARY KEY,
            dataset TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            note TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (dataset, version))""",
        """CREATE TABLE IF NOT EXISTS qrels_overlay (
            version_id INTEGER NOT NULL REFERENCES qrels_versions(id),
            query_id TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            grade INTEGER NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (version_id, query_id, doc_id))""",
    ],
    # 11 -> 12: the early pass of the daemon (docs/alerting.md, "Early warning"): each
    # checkpoint's pooled recall against the previous checkpoint's exact recall, kept apart from
    # the exact verdicts (the next pool's candidates come from ``evaluation_rankings``).
    [
        """CREATE TABLE IF NOT EXISTS early_verdicts (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            dataset TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            baseline_evaluation_id INTEGER NOT NULL REFERENCES evaluations(id),
            metric TEXT NOT NULL,
            k INTEGER NOT NULL,
            upper_bound REAL NOT NULL,
            baseline REAL NOT NULL,
            p_value REAL NOT NULL,
            alpha REAL NOT NULL,
            min_drop REAL NOT NULL,
            warned INTEGER NOT NULL,
            pool_docs INTEGER NOT NULL,
            corpus_docs INTEGER NOT NULL,
            seconds REAL NOT NULL,
            created_at REAL NOT NULL,
            exact REAL,
            exact_p_value REAL,
            exact_regressed INTEGER,
            resolved_at REAL,
            UNIQUE (checkpoint_id, dataset, config_hash))""",
        """CREATE INDEX IF NOT EXISTS early_verdicts_by_created
            ON early_verdicts(created_at DESC, id)""",
        # Each run's and held-out set's latest early verdict: what a scrape reads (no scan).
        """CREATE TABLE IF NOT EXISTS early_latest (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            dataset TEXT NOT NULL,
            verdict_id INTEGER NOT NULL,
            PRIMARY KEY (run_id, dataset))""",
    ],
    # 12 -> 13: each evaluation's precision report (records.precision.PrecisionReport as JSON:
    # the precision asked and used, the parity probe's verdict and its probe shift against fp32;
    # NULL for evaluations stored before it, which the pages show as "no report").
    [
        "ALTER TABLE evaluations ADD COLUMN precision_report TEXT",
    ],
]

#: The version a freshly opened store has.
SCHEMA_VERSION = len(MIGRATIONS)
