"""Prometheus metrics: everything ``/metrics`` serves, produced at scrape time.

``collector`` (the ``recallwatch_*`` families, read from the store's views), ``health`` (the
daemon's own health: what ``/readyz`` knows), ``cursor`` (which evaluated checkpoint each scrape is
shown: every one in turn, in step order) and ``app`` (``MetricsApp``, the ASGI app that collects in
a worker thread and encodes with prometheus-client). See docs/daemon.md#metrics.
"""
