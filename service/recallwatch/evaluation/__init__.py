"""Evaluating one checkpoint on one held-out set: loading, exact search, retrieval metrics."""
