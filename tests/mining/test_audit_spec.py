"""One audit specification: the config section, the fn-rate CLI and the audit's child process agree.

Every ``AuditSpec`` field must be settable from the daemon's ``false_negatives`` section and from
``recallwatch fn-rate``'s flags, with the same defaults, and must reach the child process as set.
``VALUES`` gives each field a non-default value: a new field fails here until it has one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from recallwatch.cli import build_parser
from recallwatch.commands.fn_rate import audit_spec
from recallwatch.config import FalseNegativeConfig
from recallwatch.daemon.auditor import audit_job
from recallwatch.daemon.runner import AuditJob
from recallwatch.errors import ConfigError
from recallwatch.mining.audit_spec import AuditSpec, MinedFormat, cli_flag
from recallwatch.mining.formats import FORMATS

ORACLES = ["qrels:/data/audit.tsv", "model:/models/judge"]


def values(auth_file: Path) -> dict[str, tuple[Any, list[str]]]:
    """field -> (a non-default value, the fn-rate arguments that set it)."""
    return {
        "format": ("triplet", ["--format", "triplet"]),
        "allow_unmatched": (True, ["--allow-unmatched"]),
        "oracles": (ORACLES, ["--oracle", ORACLES[0], "--oracle", ORACLES[1]]),
        "agree": (2, ["--agree", "2"]),
        "relevance_level": (2, ["--relevance-level", "2"]),
        "judge_relative_margin": (0.1, ["--judge-relative-margin", "0.1"]),
        "judge_threshold": (0.5, ["--judge-threshold", "0.5"]),
        "device": ("cuda", ["--device", "cuda"]),
        "batch_size": (8, ["--batch-size", "8"]),
        "sample_size": (64, ["--sample", "64"]),
        "half_width": (0.025, ["--half-width", "0.025"]),
        "sampling": ("stratified", ["--sampling", "stratified"]),
        "rank_buckets": ([1, 5, 20], ["--buckets", "1,5,20"]),
        "control_size": (0, ["--control", "0"]),
        "seed": (7, ["--seed", "7"]),
        "target": (0.1, ["--target", "0.1"]),
        "http_auth_env": ("JUDGE_TOKEN", ["--http-auth-env", "JUDGE_TOKEN"]),
        "http_auth_file": (auth_file, ["--http-auth-file", str(auth_file)]),
        "http_header_env": (["X-Team=JUDGE_TEAM"], ["--http-header-env", "X-Team=JUDGE_TEAM"]),
        "http_timeout_seconds": (5.0, ["--http-timeout", "5"]),
        "http_retries": (0, ["--http-retries", "0"]),
        "http_batch_size": (16, ["--http-batch-size", "16"]),
    }


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, list[str]]]:
    """``values`` with the secrets they name present (the config checks them at load time)."""
    monkeypatch.setenv("JUDGE_TOKEN", "Bearer t")
    monkeypatch.setenv("JUDGE_TEAM", "search")
    auth_file = tmp_path / "token"
    auth_file.write_text("Bearer t")
    return values(auth_file)


def from_cli(*args: str) -> AuditSpec:
    """The spec ``recallwatch fn-rate`` builds from these arguments."""
    parsed = build_parser().parse_args(["fn-rate", "--mined", "m.jsonl", "--corpus", "c", *args])
    return audit_spec(parsed)


def from_config(**options: Any) -> AuditSpec:
    """The spec of a ``false_negatives`` section with these options."""
    section = {"corpus": "/data/corpus", "oracles": ORACLES, **options}
    return AuditSpec.of(FalseNegativeConfig.model_validate(section))


def test_every_field_has_a_value_here(table: dict[str, tuple[Any, list[str]]]) -> None:
    assert list(table) and set(table) == set(AuditSpec.model_fields)
    assert all(table[f][0] != AuditSpec().model_dump()[f] for f in table), "not a default"


def test_the_defaults_agree() -> None:
    assert from_cli() == AuditSpec()
    config = FalseNegativeConfig.model_fields
    for field, spec_field in AuditSpec.model_fields.items():
        if field != "oracles":  # the daemon needs at least one judge; the CLI may sample only
            assert config[field].default == spec_field.default, field
    assert from_config() == AuditSpec(oracles=ORACLES)


@pytest.mark.parametrize("field", sorted(AuditSpec.model_fields))
def test_each_field_is_settable_from_config_and_cli_alike(
    field: str, table: dict[str, tuple[Any, list[str]]]
) -> None:
    value, args = table[field]
    assert args[0] == cli_flag(field)
    cli = from_cli(*args)
    assert getattr(cli, field) == value
    config = from_config(**{field: value})
    assert getattr(config, field) == value
    if field != "oracles":
        assert cli.model_copy(update={"oracles": ORACLES}) == config


def test_the_child_process_gets_the_spec_as_set(table: dict[str, tuple[Any, list[str]]]) -> None:
    options = {f: v for f, (v, _) in table.items() if f not in ("half_width", "http_auth_file")}
    config = FalseNegativeConfig.model_validate({"corpus": "/data/corpus", **options})
    job = audit_job(config, Path("/runs/a/mined.jsonl"), {"range_min": 3})
    sent = AuditJob.from_json(json.loads(json.dumps(job.as_json())))
    args = [arg for f, (_, given) in table.items() if f in options for arg in given]
    assert sent.spec == AuditSpec.of(config) == from_cli(*args)
    # The builders the CLI and the child both use see the same options.
    assert sent.spec.audit_config() == from_cli(*args).audit_config()
    assert sent.spec.import_options(rank_offset=3).format == "triplet"


def test_the_mined_formats_are_the_readers() -> None:
    assert get_args(MinedFormat) == FORMATS


def test_bad_cli_values_name_their_flag() -> None:
    with pytest.raises(ConfigError) as info:
        from_cli("--judge-relative-margin", "1.5")
    assert info.value.errors[0][0] == "--judge-relative-margin"
    with pytest.raises(ConfigError, match="NAME=ENVVAR"):
        from_cli("--http-header-env", "X-Team")
