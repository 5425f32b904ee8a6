"""Held-out data, below everything that evaluates on it.

- ``beir``: the one reader of BEIR files (``corpus.jsonl``, ``queries.jsonl``, qrels), one
  validation, errors naming file, line and field;
- ``sets``: a held-out set loaded and checked (``HeldoutSet``, ``load_heldout``), and the one
  selection of its evaluated queries and judged documents;
- ``texts``: query texts and document titles for the lost queries an alert names and the pages show.
"""
