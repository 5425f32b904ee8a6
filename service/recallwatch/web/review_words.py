"""What the review page calls things, per kind of review set (``ReviewSet.kind``).

A **mined** set's item is a mined negative; a relevant one is a false negative, and the live
estimate is the mined set's false-negative rate (with the SPRT against its target). A **holes**
queue (docs/holes.md) holds the unjudged documents a regressed checkpoint ranked above a lost
positive of a held-out query; a relevant one is a hole in the held-out qrels, and the live
estimate is the share of those displacing documents that are relevant — what
``recallwatch holes audit`` reports. The labels and their files are the same for both; only the
words differ. The server renders the page's fixed words from the set's kind, and the review API's
state carries ``kind`` so ``review.js`` picks the words of what it shows from it (``for_script``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["HOLES_NOTE", "KINDS", "ReviewKind", "ReviewWords", "for_script", "words_of"]

ReviewKind = Literal["mined", "holes"]

#: The status of a holes queue's estimate: it has no target rate, so no SPRT decides.
HOLES_NOTE = (
    "no target rate for a held-out queue; label every displacing document "
    "(the audit counts an unlabelled one as not relevant)"
)


@dataclass(frozen=True)
class ReviewWords:
    """The words of the review page for one kind of set."""

    kind: ReviewKind
    #: What the set is, in the set list and the page's sentences.
    set_name: str
    #: The heading of the document to label, and of the query's judged documents.
    item: str
    positives: str
    #: What the item's rank is.
    rank: str
    #: The buttons (and their key's help) of each label.
    relevant: str
    not_relevant: str
    unsure: str
    #: The live estimate's name, its count column, its rate column and what it counts.
    estimate: str
    count_column: str
    rate_column: str
    judged: str
    #: The progress line after "N of M" and the sentence once every item is labelled.
    progress: str
    done: str
    #: The unit of an item in sentences ("3 displacing documents").
    items: str


KINDS: dict[str, ReviewWords] = {
    "mined": ReviewWords(
        kind="mined",
        set_name="mined set",
        item="Mined negative",
        positives="Labelled positive(s)",
        rank="mining rank",
        relevant="relevant (false negative)",
        not_relevant="not relevant",
        unsure="unsure",
        estimate="False-negative rate",
        count_column="FN",
        rate_column="rate",
        judged="judged",
        progress="labelled by you",
        done="Every item of the sample is labelled by you.",
        items="sampled negatives",
    ),
    "holes": ReviewWords(
        kind="holes",
        set_name="held-out holes queue",
        item="Unjudged document ranked above a lost positive",
        positives="Relevant document(s) of the query in the held-out qrels",
        rank="checkpoint rank",
        relevant="relevant to the query (a hole in the qrels)",
        not_relevant="not relevant to the query",
        unsure="unsure",
        estimate="Relevant share of the displacing documents",
        count_column="relevant",
        rate_column="share relevant",
        judged="judged displacing documents",
        progress="displacing documents labelled by you",
        done="Every displacing document of the queue is labelled by you.",
        items="displacing documents",
    ),
}


def words_of(kind: str) -> ReviewWords:
    """The words of a kind of set (an unknown kind is an error, not a guess)."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown review set kind {kind!r} (known: {', '.join(KINDS)})") from None


def for_script() -> dict[str, dict[str, str]]:
    """Every kind's words as JSON for ``review.js`` (it picks by the state's ``kind``)."""
    return {k: {f: str(v) for f, v in asdict(w).items()} for k, w in KINDS.items()}
