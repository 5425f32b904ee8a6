"""What the pages and the JSON API show: each view built once, from the store, rendered twice.

A view is a function of the store returning plain data (dataclasses over the store's rows):
``runs`` (the runs, a run's history), ``checkpoints`` (a page of a run's checkpoints, one
checkpoint, its false-negative audit), ``comparison`` (a checkpoint against its baseline: the
checkpoint page), ``alerts`` (a page of alerts, one alert), ``paging`` (a page of a listing).
``web.pages`` render them as HTML (Jinja2), ``api`` as JSON (its pydantic models, which make the
OpenAPI document), ``web.standalone`` into the one file of ``recallwatch report``. Views read,
never write, and import no web framework.
"""
