"""The options of an encoder, defined once.

``EncoderOptions`` is what ``recallwatch eval`` takes on its command line (its flags are the field
names with dashes, their defaults these), what the daemon's ``evaluation.encoder`` section holds
(``config.EncoderConfig`` extends it with the encoder ``spec``) and what the daemon hands the
evaluation's child process (``model_dump``, read back with ``model_validate``). A new encoder
option is one field here plus its use in the kinds that take it (``encoders.kinds``); the config
key, the flag's default and the child's payload follow.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from recallwatch.encoders.precision import Precision

__all__ = ["EncoderOptions"]


class EncoderOptions(BaseModel):
    """How a model encoder runs (the ``st`` kind's options; the other kinds ignore them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = "cpu"
    batch_size: Annotated[int, Field(ge=1)] = 32
    max_seq_length: Annotated[int, Field(ge=1)] | None = None
    normalize: bool = False
    query_prompt: str | None = None
    document_prompt: str | None = None
    #: ``fp32``: sentence-transformers' own numbers. ``auto``: the device's native reduced
    #: precision after a parity probe, else fp32 (``encoders.precision``); it can move recall@k
    #: by a few queries (docs/daemon.md, "Encoder precision"), so it is an opt-in. The one
    #: default of the config, the CLI and the child process.
    precision: Precision = "fp32"

    @classmethod
    def of(cls, options: EncoderOptions) -> EncoderOptions:
        """The encoder options alone of ``options`` (e.g. of the daemon's config section)."""
        return cls.model_validate(options.model_dump(include=set(cls.model_fields)))
