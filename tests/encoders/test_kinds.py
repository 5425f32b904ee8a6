"""Encoder kinds: a registry by spec name or prefix; a new kind is one registered class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recallwatch.encoders import (
    ENCODER_KINDS,
    EmbeddingSource,
    EncoderKind,
    EncoderOptions,
    kind_for,
    open_source,
    validate_spec,
)
from recallwatch.encoders.kinds import register
from recallwatch.errors import ConfigError


def test_the_built_in_kinds_and_what_callers_ask_of_them() -> None:
    assert set(ENCODER_KINDS) == {"st", "openvino", "precomputed", "python"}
    assert validate_spec("sentence-transformers") == validate_spec("st") == "st"
    assert validate_spec("python:pkg.mod:Cls.fn") == "python:pkg.mod:Cls.fn"
    assert kind_for("precomputed").reads_embeddings
    assert kind_for("st").uses_precision and not kind_for("st").reads_embeddings
    assert not kind_for("python:m:f").uses_precision
    assert kind_for("openvino").uses_precision
    with pytest.raises(
        ConfigError, match="use 'st', 'openvino', 'precomputed' or 'python:MODULE:CALLABLE'"
    ):
        validate_spec("python:only-one-colon")


@pytest.fixture
def constant_kind() -> Iterator[type[EncoderKind]]:
    """A kind registered for one test, then removed from the registry."""

    @register
    class Constant(EncoderKind):
        name = "constant"
        takes_argument = True
        usage = "constant:VALUE"

        def open(
            self,
            spec: str,
            checkpoint: Path | str,
            options: EncoderOptions,
            *,
            show_progress: bool | None = None,
        ) -> EmbeddingSource:
            raise LookupError(f"{spec} {options.batch_size}")

    try:
        yield Constant
    finally:
        del ENCODER_KINDS["constant"]


def test_a_new_kind_is_found_by_its_prefix_and_opened_with_the_options(
    constant_kind: type[EncoderKind], tmp_path: Path
) -> None:
    assert kind_for("constant:1.5") is constant_kind
    with pytest.raises(LookupError, match=r"constant:1\.5 7"):
        open_source("constant:1.5", tmp_path, EncoderOptions(batch_size=7))
    with pytest.raises(ConfigError, match="or 'constant:VALUE'"):
        validate_spec("faiss")
    with pytest.raises(ValueError, match="already registered"):

        @register
        class Again(EncoderKind):
            name = "constant"
            usage = "constant"


def test_the_st_kind_takes_every_option_and_a_call_without_options_is_fp32(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import recallwatch.encoders.sentence_transformers as st

    seen: list[dict[str, object]] = []

    class Recording:
        name = "recording"

        def __init__(self, model_dir: Path, **kwargs: object) -> None:
            seen.append(kwargs)

    monkeypatch.setattr(st, "SentenceTransformerEncoder", Recording)
    open_source("st", tmp_path, EncoderOptions(batch_size=3), show_progress=False)
    open_source("sentence-transformers", tmp_path)
    assert seen[0] == {**EncoderOptions(batch_size=3).model_dump(), "show_progress": False}
    # The config's and the CLI's default is EncoderOptions' own; a library call that names no
    # options keeps the fp32 it had before ``auto`` existed.
    assert seen[1]["precision"] == "fp32" and seen[1]["show_progress"] is None
