"""Integrations that connect training code to recallwatch with a few lines.

- :mod:`recallwatch.integrations.sentence_transformers` (needs the ``st`` extra): ``mine`` wraps
  sentence-transformers' ``mine_hard_negatives`` and writes the mined set with exact ranks and
  scores plus ``mining.json``; ``RecallwatchCallback`` copies the active ``mining.json`` into every
  checkpoint and can precompute held-out embeddings for the daemon.

This package imports nothing heavy; import the submodule you need.
"""

from __future__ import annotations

__all__: list[str] = []
