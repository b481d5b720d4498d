"""Candidates: a query with its ranked passages and their texts, the input of every reranker.

A run carries only ids and scores. Rerankers need the query text and each
passage's text, so `build_candidates` looks them up once per run and hands the
stages a list of `Candidates`. `to_run` turns reranked candidates back into a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Mapping, Protocol

from dear_ir.runs import Hit, Run

logger = logging.getLogger(__name__)


class MissingDocumentError(KeyError):
    """A docid of the run is absent from the document source."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class DocumentSource(Protocol):
    """Anything that returns a passage's text by docid (a corpus file, a Lucene index)."""

    name: str

    def text(self, docid: str) -> str | None:
        """Return the passage text, or None when the docid is not in the source."""


@dataclass
class Passage:
    docid: str
    text: str
    score: float


@dataclass
class Candidates:
    """One query and its passages in rank order."""

    qid: str
    query: str
    passages: list[Passage] = field(default_factory=list)

    def reordered(self, order: list[int], scores: list[float] | None = None) -> "Candidates":
        """Return a copy with passages in `order` (indexes into the current list)."""
        passages = [self.passages[i] for i in order]
        if scores is not None:
            passages = [replace(p, score=s) for p, s in zip(passages, scores)]
        return replace(self, passages=passages)


def build_candidates(
    run: Run,
    topics: Mapping[str, str],
    source: DocumentSource,
    skip_missing: bool = False,
) -> list[Candidates]:
    """Attach query and passage texts to every query of `run`.

    A qid missing from `topics` raises. A docid missing from `source` raises,
    naming it, unless `skip_missing` is set: then the hit is dropped and counted.
    """
    missing_topics = [qid for qid in run if qid not in topics]
    if missing_topics:
        raise KeyError(
            f"{len(missing_topics)} qids of run {run.name!r} have no topic, e.g. {missing_topics[:5]}; "
            "pass the topics file that belongs to this run"
        )

    candidates = []
    skipped = 0
    for qid, hits in run.items():
        passages = []
        for hit in hits:
            text = source.text(hit.docid)
            if text is None:
                if not skip_missing:
                    raise MissingDocumentError(
                        f"docid {hit.docid!r} (qid {qid}) not found in {source.name}; "
                        "check that the run and the corpus belong together, or pass --skip-missing"
                    )
                skipped += 1
                continue
            passages.append(Passage(hit.docid, text, hit.score))
        candidates.append(Candidates(qid, topics[qid], passages))

    if skipped:
        logger.warning("skipped %d hits whose docid is not in %s", skipped, source.name)
    return candidates


def to_run(candidates: list[Candidates], name: str) -> Run:
    """Return the run of the candidates in their current order and scores."""
    run = Run(name=name)
    for query in candidates:
        run[query.qid] = [Hit(p.docid, p.score) for p in query.passages]
    return run
