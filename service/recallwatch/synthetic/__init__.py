"""Synthetic data with known answers, in the real on-disk formats.

``heldout``: held-out sets and checkpoints; ``mined``: mined sets with planted false negatives.
For the demo, tests and benchmarks.
"""
