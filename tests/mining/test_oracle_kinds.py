"""Oracle kinds: a registry by spec prefix, used by ``open_oracle`` and the config alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recallwatch.config import parse_config
from recallwatch.errors import ConfigError
from recallwatch.mining.oracles import (
    ORACLE_KINDS,
    Oracle,
    OracleKind,
    OracleOptions,
    kind_of,
    open_oracle,
    register,
)


def test_the_built_in_kinds_and_their_arguments() -> None:
    prefixes = {p for kind in ORACLE_KINDS.values() for p in kind.prefixes}
    assert prefixes == {
        "qrels", "labels", "review", "model", "bi-encoder", "cross-encoder", "proxy", "http",
        "https",
    }  # fmt: skip
    kind, argument = kind_of("cross-encoder:/m:1")
    assert kind.takes_path and argument == "/m:1"
    kind, argument = kind_of("https://judge/v1")
    assert not kind.takes_path and argument == "https://judge/v1"
    with pytest.raises(ConfigError, match="unknown oracle"):
        kind_of("http:judge")
    # ``review`` is a bare word: the daemon's /review labels, not openable outside it.
    kind, argument = kind_of("review")
    assert not kind.takes_path and argument == ""
    with pytest.raises(ConfigError, match="unknown oracle"):
        kind_of("review:x")
    with pytest.raises(ConfigError, match="labels:FILE"):
        open_oracle("review")


@pytest.fixture
def psychic() -> Iterator[type[OracleKind]]:
    """A kind registered for one test, then removed from the registry."""

    @register
    class Psychic(OracleKind):
        prefixes = ("psychic",)
        usages = ("psychic:PATH",)
        takes_path = True

        def open(self, spec: str, argument: str, options: OracleOptions) -> Oracle:
            raise LookupError(f"{argument} {options.batch_size}")

    try:
        yield Psychic
    finally:
        del ORACLE_KINDS["psychic"]


def test_a_new_kind_is_opened_and_accepted_by_the_config(
    psychic: type[OracleKind], tmp_path: Path
) -> None:
    with pytest.raises(LookupError, match="me 9"):
        open_oracle("psychic:me", OracleOptions(batch_size=9))
    doc = {
        "heldout": [{"path": "h"}],
        "runs": [{"name": "a", "directory": "r"}],
        "false_negatives": {"corpus": "c", "oracles": ["psychic:me"]},
    }
    config = parse_config(doc, base_dir=tmp_path)
    assert config.false_negatives is not None
    assert config.false_negatives.oracles == [f"psychic:{tmp_path / 'me'}"]
    with pytest.raises(ValueError, match="already registered"):

        @register
        class Again(OracleKind):
            prefixes = ("labels", "tarot")
            usages = ("labels:PATH",)
