"""sentence-transformers training jobs → recallwatch, with no glue code (needs the ``st`` extra).

Two pieces, a few lines in a training script (docs/integrations.md has the whole story)::

    from recallwatch.integrations.sentence_transformers import RecallwatchCallback, mine

    train = mine(pairs, teacher, run_dir=out, corpus=corpus_texts, id_corpus="data/scifact",
                 range_min=10, relative_margin=0.05, num_negatives=5)
    trainer = SentenceTransformerTrainer(..., args=SentenceTransformerTrainingArguments(out, ...),
                                         callbacks=[RecallwatchCallback(heldout="data/heldout")])

``mine``
    Calls sentence-transformers' own ``mine_hard_negatives`` with the same arguments and returns
    its dataset unchanged. It also writes, under ``run_dir``:

    - the mined set as recallwatch JSONL (``recallwatch-mining/<key>/mined.jsonl``): per query its
      positives with their scores and each negative with its **exact rank** among the candidates
      and its score (what ``recallwatch fn-rate`` needs for margin recommendations);
    - ``mining.json``: every argument that changes what is mined, the teacher's name or path and
      a SHA-256 of its weights (and the cross-encoder's), a fingerprint of the dataset and of the
      corpus, the sentence-transformers version, and ``mined_set`` (the JSONL, relative to
      ``run_dir``). It holds nothing else (no time, no host), so the same call gives the same
      fingerprint and any changed argument changes it.

``RecallwatchCallback``
    A transformers ``TrainerCallback``: on each save it copies the active ``mining.json`` into the
    checkpoint, optionally encodes a held-out set into ``<checkpoint>/eval_embeddings/`` (the
    daemon's ``precomputed`` encoder), and writes the ready marker ``recallwatch.ready`` last.

How ranks are reconstructed (exactly)
    ``mine_hard_negatives`` returns texts, not ranks. ``mine`` passes a ``cache_folder`` (a
    temporary one unless you gave yours; it changes nothing that is mined) so that the function
    saves the very embeddings it searched with, then repeats the function's candidate search on
    them: the same similarity function, the same chunks and top-k window (as many candidates
    as the installed version retrieves: ``ranks.search_rule``, with ``range_max`` derived the way
    the function derives it), the same
    cross-encoder rescoring when one is used. A negative's ``rank`` is its position among the
    query's *non-positive* candidates ordered by that score (the cross-encoder's score when it
    rescored them), before ``range_min``, the margins, ``max_score`` and ``min_score`` are
    applied: rank 1 is the hardest candidate, and ``range_min=10`` with no other filter mines
    ranks 11, 12, ... . Each negative is located by its text (the function de-duplicates texts,
    so the text names one candidate), so ranks are exact for ``sampling_strategy="random"`` too.
    Ties (equal scores) are ordered as ``torch.topk`` returned them. Where the embeddings cannot be
    recovered from the cache (a sentence-transformers version that names the files differently),
    they are encoded again with the same calls; ``mining.json``'s ``ranks`` says which, and a
    negative that is not among the reconstructed candidates makes the ranks ``approximate`` (its
    position in the function's output is used), as ``ranks.note`` then says.

Ids
    recallwatch refers to documents by id. With ``id_corpus=<BEIR dir>`` texts are mapped to that
    directory's ids (exact match after whitespace normalisation, against ``title + " " + text``
    and ``text``, as ``recallwatch fn-rate`` matches) and anchors to its ``queries.jsonl`` (an
    anchor that is not there gets an ``anchor:<sha256-16>`` id and its text in the line). Point
    the daemon's ``false_negatives.corpus`` at the same directory. Without ``id_corpus``, ids are
    derived from the exact text (``text:`` / ``anchor:`` + the first 16 hex digits of its SHA-256)
    and the texts are written as a BEIR directory, ``<run_dir>/recallwatch-mining/corpus``, that
    ``false_negatives.corpus`` can point at (it accumulates the corpora of every mining of the
    run, so one config entry serves them all).
"""

from __future__ import annotations

from recallwatch.integrations.sentence_transformers.callback import RecallwatchCallback
from recallwatch.integrations.sentence_transformers.files import (
    MINED_DIR,
    MINING_FILE,
    READY_MARKER,
)
from recallwatch.integrations.sentence_transformers.identity import (
    canonical_json,
    fingerprint,
    mining_arguments,
    weights_sha256,
)
from recallwatch.integrations.sentence_transformers.mine import mine

__all__ = [
    "MINED_DIR",
    "MINING_FILE",
    "READY_MARKER",
    "RecallwatchCallback",
    "canonical_json",
    "fingerprint",
    "mine",
    "mining_arguments",
    "weights_sha256",
]
