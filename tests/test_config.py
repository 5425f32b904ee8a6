"""recallwatch.yaml: validation with dotted paths, secrets from env or files, check-config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recallwatch.cli import main
from recallwatch.config import Config, load_config, parse_config
from recallwatch.daemon.evaluation import dataset_key
from recallwatch.errors import ConfigError

SECRET = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid document, plus ``extra`` top-level sections."""
    return {
        "heldout": [{"path": "data/scifact"}],
        "runs": [{"name": "a", "directory": "runs/a"}],
        **extra,
    }


def errors_of(doc: Any) -> list[tuple[str, str]]:
    """The (dotted path, message) pairs of an invalid document."""
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="test.yaml")
    return info.value.errors


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "recallwatch.yaml"
    path.parent.mkdir()
    path.write_text("heldout: [{path: data/scifact}]\nruns: [{name: a, directory: /runs/a}]\n")
    config = load_config(path)
    assert config.heldout[0].path == path.parent / "data" / "scifact"
    assert config.heldout[0].dataset == "scifact"
    assert config.runs[0].directory == Path("/runs/a")
    assert config.store.path == path.parent / "recallwatch.db"
    run = config.runs[0]
    assert (run.checkpoint_glob, run.ready_marker, run.mining_metadata) == (
        "checkpoint-*",
        "trainer_state.json",
        "mining.json",
    )
    assert config.evaluation.concurrency == 1
    assert config.evaluation.policy == "oldest_first"
    assert config.http.port == 9464
    assert config.false_negatives is None


def test_encoder_shorthand_and_per_run_override() -> None:
    doc = minimal(evaluation={"encoder": "precomputed"})
    doc["runs"].append({"name": "b", "directory": "/b", "encoder": {"spec": "st", "batch_size": 8}})
    config = parse_config(doc)
    assert config.encoder_for(config.runs[0]).spec == "precomputed"
    assert config.encoder_for(config.runs[1]).batch_size == 8


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"poll_interval_seconds": 0}, "poll_interval_seconds", "greater than 0"),
        ({"surprise": 1}, "surprise", "unknown field"),
        ({"evaluation": {"ks": [10, 0]}}, "evaluation.ks.1", "greater than or equal to 1"),
        ({"evaluation": {"policy": "newest"}}, "evaluation.policy", "oldest_first"),
        ({"evaluation": {"encoder": "bert"}}, "evaluation.encoder.spec", "unknown encoder"),
        ({"http": {"listen": "localhost"}}, "http.listen", "HOST:PORT"),
        ({"http": {"listen": "127.0.0.1:70000"}}, "http.listen", "out of range"),
        ({"runs": [{"name": "a b", "directory": "/x"}]}, "runs.0.name", "match pattern"),
        (
            {"runs": [{"name": "a", "directory": "/x", "ready_marker": "../x"}]},
            "runs.0.ready_marker",
            "relative",
        ),
        ({"runs": []}, "runs", "at least 1"),
        (
            {"runs": [{"name": "a", "directory": "/x"}, {"name": "a", "directory": "/y"}]},
            "runs.1.name",
            "duplicate",
        ),
        ({"false_negatives": {"sample_size": 10}}, "false_negatives.oracles", "required"),
        ({"false_negatives": {"sample_size": 10}}, "false_negatives.corpus", "required"),
        (
            {"false_negatives": {"corpus": "c", "oracles": ["psychic:me"]}},
            "false_negatives.oracles.0",
            "unknown oracle",
        ),
        (
            {"false_negatives": {"corpus": "c", "oracles": ["qrels:a"], "rank_buckets": [3, 1]}},
            "false_negatives.rank_buckets",
            "increase strictly",
        ),
        (
            {
                "false_negatives": {
                    "corpus": "c",
                    "oracles": ["qrels:a"],
                    "sample_size": 9,
                    "half_width": 0.1,
                }
            },
            "false_negatives",
            "not both",
        ),
    ],
)
def test_invalid_values_are_reported_by_dotted_path(
    change: dict[str, Any], path: str, message: str
) -> None:
    doc = minimal()
    for key, value in change.items():
        doc[key] = value
    errors = errors_of(doc)
    assert any(loc == path and message in msg for loc, msg in errors), errors


def test_every_error_is_reported_at_once() -> None:
    doc = minimal(poll_interval_seconds=-1, evaluation={"concurrency": 0, "timeout_seconds": 0})
    paths = {loc for loc, _ in errors_of(doc)}
    assert paths == {
        "poll_interval_seconds",
        "evaluation.concurrency",
        "evaluation.timeout_seconds",
    }


def test_secrets_come_from_env_or_file_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RW_SLACK", SECRET)
    secret_file = tmp_path / "signing"
    secret_file.write_text("whsec_MTIz\n")
    doc = minimal(
        notifications={
            "channels": [
                {"name": "slack", "type": "slack", "webhook_url_env": "RW_SLACK"},
                {
                    "name": "hook",
                    "type": "webhook",
                    "url_env": "RW_SLACK",
                    "secret_file": str(secret_file),
                },
                {"name": "am", "type": "alertmanager", "url": "http://am:9093"},
            ],
            "rules": [
                {"name": "drop", "type": "recall_regression", "channels": ["slack", "am"]},
                {"name": "fn", "type": "false_negative_rate", "channels": ["hook"]},
            ],
        }
    )
    config = parse_config(doc)
    slack, hook, am = config.notifications.channels
    url = slack.secret("webhook_url")
    assert url is not None and url.get_secret_value() == SECRET
    signing = hook.secret("secret")
    assert signing is not None and signing.get_secret_value() == "whsec_MTIz"
    assert am.secret("bearer_token") is None
    for text in (repr(config), str(config), config.model_dump_json()):
        assert "very-secret-token" not in text and "whsec_MTIz" not in text


@pytest.mark.parametrize(
    ("channel", "path", "message"),
    [
        ({"webhook_url": SECRET}, "notifications.channels.0.webhook_url", "webhook_url_env"),
        (
            {"webhook_url_env": "RW_UNSET_VAR"},
            "notifications.channels.0.webhook_url_env",
            "RW_UNSET_VAR is not set",
        ),
        (
            {"webhook_url_file": "/nonexistent/slack"},
            "notifications.channels.0.webhook_url_file",
            "cannot read",
        ),
        ({}, "notifications.channels.0", "webhook_url is required"),
        (
            {"webhook_url_env": "RW_SLACK", "webhook_url_file": "{file}"},
            "notifications.channels.0",
            "not both",
        ),
    ],
)
def test_secret_errors_name_the_field_not_the_value(
    channel: dict[str, Any],
    path: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("RW_SLACK", SECRET)
    monkeypatch.delenv("RW_UNSET_VAR", raising=False)
    (tmp_path / "secret").write_text(SECRET)
    channel = {k: v.replace("{file}", str(tmp_path / "secret")) for k, v in channel.items()}
    doc = minimal(notifications={"channels": [{"name": "s", "type": "slack", **channel}]})
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert any(loc == path and message in msg for loc, msg in info.value.errors), info.value.errors
    assert "very-secret-token" not in str(info.value)


def test_rules_must_name_known_channels_runs_and_computed_ks() -> None:
    doc = minimal(
        notifications={
            "channels": [{"name": "am", "type": "alertmanager", "url": "http://am:9093"}],
            "rules": [
                {"name": "r", "type": "recall_regression", "channels": ["nope"], "ks": [7]},
                {
                    "name": "f",
                    "type": "recall_floor",
                    "channels": ["am"],
                    "runs": ["zz"],
                    "floor": 0.5,
                },
            ],
        }
    )
    assert set(errors_of(doc)) == {
        ("notifications.rules.0.channels", "unknown channel 'nope'"),
        ("notifications.rules.0.ks", "k=7 is not computed: add it to evaluation.ks"),
        ("notifications.rules.1.runs", "unknown run 'zz'"),
    }


def test_dataset_key_changes_with_what_changes_the_numbers() -> None:
    base = parse_config(minimal())

    def key(config: Config) -> str:
        return dataset_key(config, config.runs[0], config.heldout[0])

    assert key(base) == key(parse_config(minimal(poll_interval_seconds=5)))
    assert key(base) == key(parse_config(minimal(evaluation={"concurrency": 2})))
    assert key(base) != key(parse_config(minimal(evaluation={"ks": [1, 10]})))
    assert key(base) != key(parse_config(minimal(evaluation={"encoder": "precomputed"})))
    # Where and how fast the encoder runs does not change the numbers: no re-evaluation.
    moved = {"encoder": {"spec": "precomputed", "device": "cuda", "batch_size": 512}}
    precomputed = {"encoder": {"spec": "precomputed"}}
    assert key(parse_config(minimal(evaluation=precomputed))) == key(
        parse_config(minimal(evaluation=moved))
    )
    longer = {"encoder": {"spec": "precomputed", "max_seq_length": 512}}
    assert key(parse_config(minimal(evaluation=precomputed))) != key(
        parse_config(minimal(evaluation=longer))
    )
    other_split = minimal()
    other_split["heldout"] = [{"path": "data/scifact", "split": "dev"}]
    assert key(base) != key(parse_config(other_split))


def test_encoder_precision_and_its_part_in_the_dataset_key() -> None:
    def key(encoder: dict[str, Any]) -> str:
        config = parse_config(minimal(evaluation={"encoder": encoder}))
        return dataset_key(config, config.runs[0], config.heldout[0])

    # fp32 by default: auto can move recall@10 by a few queries (docs/daemon.md)
    assert parse_config(minimal()).evaluation.encoder.precision == "fp32"
    assert parse_config(minimal()).evaluation.encoder.options().precision == "fp32"
    (error,) = errors_of(minimal(evaluation={"encoder": {"spec": "st", "precision": "fp8"}}))
    assert error[0] == "evaluation.encoder.precision"
    st = {"spec": "st"}
    keys = {p: key({**st, "precision": p}) for p in ("auto", "fp32", "bf16", "fp16")}
    assert len(set(keys.values())) == 4  # st: the precision can change the numbers
    # fp32 keeps the key an st evaluation had before precision existed (no re-evaluation).
    import hashlib
    import json

    config = parse_config(minimal(evaluation={"encoder": {**st, "precision": "fp32"}}))
    enc = config.evaluation.encoder.model_dump(
        mode="json", exclude={"device", "batch_size", "precision"}
    )
    heldout = config.heldout[0]
    doc = {
        "encoder": enc,
        "ks": config.evaluation.ks,
        "similarity": config.evaluation.similarity,
        "heldout": {"path": str(heldout.path), "split": "test", "relevance_level": 1},
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert keys["fp32"] == hashlib.sha256(blob).hexdigest()[:16]
    # Precomputed embeddings have no precision of recallwatch's: the setting changes nothing.
    pre = {"spec": "precomputed"}
    assert key({**pre, "precision": "bf16"}) == key({**pre, "precision": "fp32"}) == key(pre)


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    heldout = tmp_path / "heldout"
    (heldout / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (heldout / name).write_text("")
    good = tmp_path / "good.yaml"
    good.write_text(
        f"heldout: [{{path: {heldout}}}]\n"
        "runs: [{name: a, directory: runs/a}]\n"
        "evaluation: {encoder: precomputed}\n"
    )
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: valid" in out and "warning: runs.0.directory" in out

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "heldout: [{path: nowhere}]\nruns: [{name: a, directory: /a, settle_seconds: -1}]\n"
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"invalid configuration in {bad}" in err
    assert "  runs.0.settle_seconds: Input should be greater than or equal to 0" in err

    missing = tmp_path / "missing.yaml"
    missing.write_text(
        f"heldout: [{{path: {tmp_path / 'nowhere'}}}]\nruns: [{{name: a, directory: /a}}]\n"
        "evaluation: {encoder: precomputed}\n"
    )
    assert main(["check-config", str(missing)]) == 2
    assert "heldout.0.path: not a BEIR held-out set" in capsys.readouterr().err


def test_yaml_syntax_errors_have_a_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("runs:\n  - name: a\n   directory: x\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(path)


def test_fn_oracle_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "rw.yaml"
    path.write_text(
        "heldout: [{path: h}]\nruns: [{name: a, directory: r}]\n"
        "false_negatives: {corpus: train, oracles: [qrels:audit.tsv, 'https://judge/v1', "
        "model:/models/judge]}\n"
    )
    fn = load_config(path).false_negatives
    assert fn is not None and fn.corpus == tmp_path / "train"
    assert fn.oracles == [
        f"qrels:{tmp_path / 'audit.tsv'}",
        "https://judge/v1",
        "model:/models/judge",
    ]


def test_the_annotated_example_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECALLWATCH_SLACK_WEBHOOK_URL", SECRET)
    monkeypatch.setenv("RECALLWATCH_WEBHOOK_URL", "https://hooks.example.com/rw")
    example = Path(__file__).resolve().parents[1] / "examples" / "recallwatch.yaml"
    signing = tmp_path / "signing"
    signing.write_text("whsec_c2VjcmV0")
    text = example.read_text().replace("/run/secrets/recallwatch-webhook-secret", str(signing))
    (tmp_path / "recallwatch.yaml").write_text(text)
    config = load_config(tmp_path / "recallwatch.yaml")
    assert [r.name for r in config.runs] == ["minilm-mnrl-hardneg", "e5-small-precomputed"]
    assert config.encoder_for(config.runs[1]).spec == "precomputed"
    assert config.false_negatives is not None
    assert len(config.notifications.rules) == 5


def test_http_judge_headers_come_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = {"corpus": "c", "oracles": ["https://judge/v1"]}
    monkeypatch.setenv("JUDGE_TOKEN", "Bearer hush")
    monkeypatch.setenv("JUDGE_TEAM", "search")
    config = parse_config(
        minimal(
            false_negatives={
                **fn,
                "http_auth_env": "JUDGE_TOKEN",
                "http_header_env": ["X-Team=JUDGE_TEAM"],
                "http_timeout_seconds": 5,
            }
        )
    )
    assert config.false_negatives is not None
    assert config.false_negatives.http_header_env == ["X-Team=JUDGE_TEAM"]
    assert "hush" not in repr(config)  # only the variable's name is held
    token = tmp_path / "token"
    token.write_text("Bearer hush\n")
    both = {**fn, "http_auth_env": "JUDGE_TOKEN", "http_auth_file": str(token)}
    assert errors_of(minimal(false_negatives=both)) == [
        ("false_negatives", "give http_auth_env or http_auth_file, not both")
    ]
    missing = errors_of(minimal(false_negatives={**fn, "http_auth_env": "NOT_SET_ANYWHERE"}))
    assert [p for p, _ in missing] == ["false_negatives.http_auth_env"]
    assert "NOT_SET_ANYWHERE" in missing[0][1]
    bad = errors_of(minimal(false_negatives={**fn, "http_header_env": ["X-Team"]}))
    assert "expected NAME=ENVVAR" in bad[0][1]


def test_check_config_never_prints_judge_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heldout = tmp_path / "heldout"
    (heldout / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (heldout / name).write_text("")
    (tmp_path / "corpus").mkdir()
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(
        f"heldout: [{{path: {heldout}}}]\n"
        "runs: [{name: a, directory: runs/a}]\n"
        "evaluation: {encoder: precomputed}\n"
        "false_negatives: {corpus: corpus, "
        "oracles: ['http:https://user:hunter2@judge.invalid/v1?token=s3cret']}\n"
    )
    main(["check-config", str(cfg)])
    captured = capsys.readouterr()
    assert "judge.invalid" in captured.out + captured.err
    assert "hunter2" not in captured.out + captured.err
    assert "s3cret" not in captured.out + captured.err


def test_the_early_pass_is_on_by_corpus_size_and_its_k_must_be_evaluated() -> None:
    early = parse_config(minimal(), source="test.yaml").evaluation.early
    assert early.enabled and early.min_corpus_docs == 100_000 and early.k is None
    # Unset, k follows the evaluated cutoffs (10, or the largest below it): no error.
    assert parse_config(minimal(evaluation={"ks": [1, 5]}), source="t.yaml").evaluation.early
    errors = errors_of(minimal(evaluation={"ks": [1, 5], "early": {"k": 10}}))
    assert any("early.k (10) must be at most the largest of ks (5)" in m for _, m in errors)
    off = minimal(evaluation={"ks": [1, 5], "early": {"enabled": False}})
    assert not parse_config(off, source="test.yaml").evaluation.early.enabled
    # The early pass changes no exact number: its settings leave the evaluation key alone.
    a = parse_config(minimal(), source="test.yaml")
    b = parse_config(minimal(evaluation={"early": {"pool_fraction": 0.5}}), source="t.yaml")
    assert dataset_key(a, a.runs[0], a.heldout[0]) == dataset_key(b, b.runs[0], b.heldout[0])
