"""What a configuration relies on outside itself: held-out files, installed extras, run folders.

Checked by ``check-config`` before it says a file is valid, and by a SIGHUP reload before the
daemon takes a new configuration.
"""

from __future__ import annotations

import importlib.util

from recallwatch.config import Config
from recallwatch.encoders import kind_for
from recallwatch.evaluation.backends import BACKENDS

__all__ = ["preflight"]


def preflight(config: Config) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Check the filesystem and installed extras a config relies on: (errors, warnings)."""
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    for i, h in enumerate(config.heldout):
        needed = [
            h.path / "corpus.jsonl",
            h.path / "queries.jsonl",
            h.path / "qrels" / f"{h.split}.tsv",
        ]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            errors.append(
                (f"heldout.{i}.path", f"not a BEIR held-out set: missing {', '.join(missing)}")
            )
    encoders = [("evaluation.encoder", config.evaluation.encoder)] + [
        (f"runs.{i}.encoder", r.encoder) for i, r in enumerate(config.runs) if r.encoder is not None
    ]
    for where, enc in encoders:
        needs = kind_for(enc.spec).requires
        if needs is not None and importlib.util.find_spec(needs[0]) is None:
            module, how = needs
            errors.append(
                (f"{where}.spec", f"the '{enc.spec}' encoder needs {_package(module)}: {how}")
            )
    backend = BACKENDS[config.evaluation.backend].requires
    if backend is not None and importlib.util.find_spec(backend[0]) is None:
        module, how = backend
        errors.append(
            (
                "evaluation.backend",
                f"the {config.evaluation.backend} backend needs {_package(module)}: {how}",
            )
        )
    for i, r in enumerate(config.runs):
        if not r.directory.is_dir():
            warnings.append(
                (
                    f"runs.{i}.directory",
                    f"{r.directory} does not exist yet; it is watched until it does",
                )
            )
    return errors, warnings


def _package(module: str) -> str:
    """The name a user installs for an importable module (``sentence_transformers``: dashes)."""
    return module.replace("_", "-")
