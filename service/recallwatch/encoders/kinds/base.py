"""What an encoder kind is: a plugin for one form of encoder spec, and their registry.

An encoder spec (``--encoder`` on the command line, ``evaluation.encoder.spec`` in the config)
names how a checkpoint becomes embeddings. Each form is an ``EncoderKind`` subclass registered
with ``@register``: ``canonical`` recognises its specs (a fixed name and its aliases, such as
``st``, or a prefix with an argument, such as ``python:MODULE:CALLABLE``), ``open`` opens the
embedding source of one checkpoint. ``kind_for`` finds a spec's kind (no if-chain): the first
registered kind, in ``listed`` order, that recognises it.

What callers ask a kind besides ``open``: ``reads_embeddings`` (the checkpoint holds its own
embeddings: the Ray backend reads its rows instead of encoding texts), ``uses_precision`` (the
``precision`` option can change its numbers: an ``auto`` parity probe, the idempotency key) and
``requires`` (the module it needs installed, and how, for ``check-config``'s preflight).

**Adding a kind** is one new module in ``encoders/kinds/`` (modules of that package are imported
when it is) with a registered ``EncoderKind`` subclass; import what it needs (torch ...) inside
``open``, so that naming the kind stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, TypeVar

from recallwatch.encoders.base import EmbeddingSource
from recallwatch.encoders.options import EncoderOptions
from recallwatch.errors import ConfigError

__all__ = [
    "ENCODER_KINDS",
    "EncoderKind",
    "kind_for",
    "open_source",
    "register",
    "validate_spec",
]

KindT = TypeVar("KindT", bound="type[EncoderKind]")


class EncoderKind(ABC):
    """One form of encoder spec: subclass, set ``name`` (and the rest), override ``open``."""

    #: The canonical spec (``st``), or for a kind with an argument, its prefix (``python``).
    name: ClassVar[str]
    #: Other spellings of the canonical spec (``sentence-transformers``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Whether specs are ``NAME:ARGUMENT`` (the argument itself may contain ``:``).
    takes_argument: ClassVar[bool] = False
    #: How the kind is written where the kinds are listed (``'python:MODULE:CALLABLE'``).
    usage: ClassVar[str]
    #: Its place where the kinds are listed (error messages): lower first.
    listed: ClassVar[int] = 100
    #: Whether the checkpoint holds its own embeddings (nothing is encoded).
    reads_embeddings: ClassVar[bool] = False
    #: Whether the ``precision`` option can change the embeddings.
    uses_precision: ClassVar[bool] = False
    #: The module the kind needs installed, and the hint that installs it; None: none.
    requires: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def canonical(cls, spec: str) -> str | None:
        """The canonical form of ``spec`` if it is of this kind, else None."""
        if cls.takes_argument:
            head, sep, argument = spec.partition(":")
            return spec if head == cls.name and sep and argument else None
        return cls.name if spec == cls.name or spec in cls.aliases else None

    @abstractmethod
    def open(
        self,
        spec: str,
        checkpoint: Path | str,
        options: EncoderOptions,
        *,
        show_progress: bool | None = None,
    ) -> EmbeddingSource:
        """The embedding source of one checkpoint (loading its model where there is one)."""


#: Encoder kinds by ``name``, registered in import order (``kinds`` lists them by ``listed``).
ENCODER_KINDS: dict[str, type[EncoderKind]] = {}


def register(cls: KindT) -> KindT:
    """Class decorator: register an encoder kind under its ``name``."""
    existing = ENCODER_KINDS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"encoder kind {cls.name!r} is already registered by {existing.__name__}")
    ENCODER_KINDS[cls.name] = cls
    return cls


def _listed() -> list[type[EncoderKind]]:
    return sorted(ENCODER_KINDS.values(), key=lambda k: (k.listed, k.name))


def kind_for(spec: str) -> type[EncoderKind]:
    """The kind of an encoder spec, or ``ConfigError`` listing the known kinds."""
    for kind in _listed():
        if kind.canonical(spec) is not None:
            return kind
    known = [f"'{k.usage}'" for k in _listed()]
    listing = known[0] if len(known) == 1 else f"{', '.join(known[:-1])} or {known[-1]}"
    raise ConfigError([("encoder", f"unknown encoder {spec!r}; use {listing}")])


def validate_spec(spec: str) -> str:
    """Return the canonical form of an encoder spec or raise ``ConfigError``."""
    canonical = kind_for(spec).canonical(spec)
    assert canonical is not None  # kind_for found the kind that recognises it
    return canonical


def open_source(
    spec: str,
    checkpoint: Path | str,
    options: EncoderOptions | None = None,
    *,
    show_progress: bool | None = None,
) -> EmbeddingSource:
    """Open the embedding source for one checkpoint (loading its model where there is one).

    ``show_progress``: a progress bar while encoding (None: when stderr is a terminal).
    """
    opts = options or EncoderOptions()
    return kind_for(spec)().open(validate_spec(spec), checkpoint, opts, show_progress=show_progress)
