"""BM25 retrieval through Pyserini's LuceneSearcher: topics in, TREC run out.

``python -m dear_ir.bm25 --index indexes/scifact --topics topics.tsv --output runs/bm25.trec``
searches a local index folder or a Pyserini prebuilt index (``msmarco-v1-passage``,
``beir-v1.0.0-scifact.flat``) and writes the run atomically, with
``NAME.trec.meta.json`` beside it recording the command, settings and versions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from tqdm import tqdm

from dear_ir.index import open_searcher
from dear_ir.java import JavaNotFoundError, running_java
from dear_ir.runs import Hit, Run, write_metadata, write_run
from dear_ir.topics import load_topics

logger = logging.getLogger(__name__)

# Queries go to Anserini in batches, small enough for the progress bar to move
# and large enough to keep every search thread busy.
QUERIES_PER_BATCH = 256


def retrieve(
    index,
    topics: dict[str, str],
    hits: int = 100,
    k1: float = 0.9,
    b: float = 0.4,
    threads: int = 1,
    remove_query: bool = False,
    name: str = "bm25",
) -> Run:
    """Search every topic with BM25 and return the top `hits` per qid.

    `index` is an index folder, a Pyserini prebuilt index name or an open
    LuceneSearcher. Hits come in Anserini's order: score, then docid for ties.
    With `remove_query`, a hit whose docid equals its qid is dropped, as
    Pyserini's ``--remove-query`` does for BEIR collections whose queries are
    also documents (ArguAna, Quora). A qid without hits keeps an empty list.
    """
    searcher = index if hasattr(index, "batch_search") else open_searcher(index)
    searcher.set_bm25(float(k1), float(b))
    # One extra hit leaves `hits` after the query's own document is dropped.
    depth = hits + 1 if remove_query else hits

    qids = list(topics)
    run = Run(name=name)
    started = time.perf_counter()
    with tqdm(total=len(qids), unit="query", desc="BM25", disable=None) as progress:
        for start in range(0, len(qids), QUERIES_PER_BATCH):
            batch = qids[start:start + QUERIES_PER_BATCH]
            results = searcher.batch_search([topics[qid] for qid in batch], batch, k=depth, threads=threads)
            for qid in batch:
                ranked = [Hit(str(hit.docid), float(hit.score)) for hit in results.get(qid, [])]
                if remove_query:
                    ranked = [hit for hit in ranked if hit.docid != qid]
                run[qid] = ranked[:hits]
            progress.update(len(batch))

    seconds = time.perf_counter() - started
    empty = sum(1 for ranked in run.values() if not ranked)
    logger.info(
        "BM25 (k1=%g, b=%g): %d queries, %d hits in %.1f s (%.1f queries/s)",
        k1, b, len(run), run.num_hits(), seconds, len(run) / seconds if seconds else 0.0,
    )
    if empty:
        logger.warning("%d of %d queries have no hits (no query term occurs in the index)", empty, len(run))
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.bm25",
        description="Retrieve with BM25 from a Lucene index and write a TREC run.",
    )
    parser.add_argument("--index", required=True, help="Lucene index folder or Pyserini prebuilt index name (e.g. msmarco-v1-passage; needs internet on first use)")
    parser.add_argument("--topics", required=True, help="topics file (TSV, TREC, JSONL) or Pyserini topics name")
    parser.add_argument("--output", required=True, help="run file to write, in TREC format")
    parser.add_argument("--hits", type=int, default=100, help="hits per query (default: 100)")
    parser.add_argument("--k1", type=float, default=0.9, help="BM25 term-frequency saturation k1 (default: 0.9)")
    parser.add_argument("--b", type=float, default=0.4, help="BM25 length normalisation b (default: 0.4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="search threads (default: the number of CPUs)")
    parser.add_argument("--remove-query", action="store_true", help="drop a hit whose docid equals its qid (BEIR ArguAna, Quora)")
    parser.add_argument("--tag", default="bm25", help="run tag, the last column of the run file (default: bm25)")
    args = parser.parse_args(argv)
    if args.hits < 1:
        parser.error(f"--hits must be at least 1, got {args.hits}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        topics = load_topics(args.topics)
        run = retrieve(
            args.index, topics, hits=args.hits, k1=args.k1, b=args.b,
            threads=args.threads, remove_query=args.remove_query, name=args.tag,
        )
    except (OSError, ValueError, KeyError, JavaNotFoundError) as error:
        logger.error("%s", error)
        return 1

    write_run(run, args.output, tag=args.tag)
    settings = {
        "index": args.index, "topics": args.topics, "hits": args.hits, "k1": args.k1, "b": args.b,
        "threads": args.threads, "remove_query": args.remove_query,
    }
    write_metadata(args.output, settings, queries=len(run), java=running_java())
    logger.info("wrote %s (%d queries, %d hits)", args.output, len(run), run.num_hits())
    return 0


if __name__ == "__main__":
    sys.exit(main())
