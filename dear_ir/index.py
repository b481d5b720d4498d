"""Lucene indexes: building one from a corpus file, and opening a local or prebuilt one.

``python -m dear_ir.index --corpus corpus.jsonl --index indexes/scifact`` reads
any corpus format that `dear_ir.corpus.iter_corpus` reads (JSONL, BEIR JSONL,
TSV), writes it as Pyserini's JsonCollection (``{"id", "contents"}`` with the
title and text joined into ``contents``), and indexes that with Anserini's
IndexCollection. The settings are those of Pyserini's BEIR "flat" indexes:
Anserini's DefaultEnglishAnalyzer (Porter stemmer, stopwords removed), with
positions, document vectors, contents and raw documents stored, so documents
can be fetched back by docid.

The index is built in a temporary folder beside the target and renamed into
place at the end, so a crash or an interrupt never leaves a half-built index
at the target. A killed process can leave that hidden ``.NAME.building-*``
folder behind, which is safe to delete.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dear_ir.corpus import iter_corpus
from dear_ir.java import JavaNotFoundError, start_jvm

logger = logging.getLogger(__name__)

# Anserini indexes the files of a collection in parallel, one thread per file,
# so the converted corpus is split into files of this many documents.
DOCUMENTS_PER_FILE = 200_000

# IndexCollection options of Pyserini's BEIR flat indexes, plus -storeContents
# so that the contents field is stored beside the raw JSON record.
INDEX_OPTIONS = (
    "-generator", "DefaultLuceneDocumentGenerator",
    "-storePositions", "-storeDocvectors", "-storeContents", "-storeRaw",
)


class IndexingError(RuntimeError):
    """Anserini failed to index documents, or indexed fewer than it was given."""


@dataclass(frozen=True)
class IndexStats:
    """Counts of one index build: documents written for Anserini, repeated docids dropped, empty and indexed documents."""

    index: Path
    documents: int
    duplicates: int
    empty: int
    indexed: int
    seconds: float


def build_index(
    corpus: str | os.PathLike,
    index: str | os.PathLike,
    threads: int | None = None,
    overwrite: bool = False,
    repair_mojibake: bool = False,
) -> IndexStats:
    """Index a corpus file into a new Lucene index folder at `index`.

    A docid that repeats keeps its first document, with one warning. Empty
    documents are skipped by Anserini and counted. An existing, non-empty
    `index` raises FileExistsError unless `overwrite` is set. Malformed input
    raises `dear_ir.textfile.TextFileError` naming the file and line.

    Text is indexed as published, mojibake included, as Pyserini's prebuilt
    indexes are, unless `repair_mojibake` is set. Invalid UTF-8 bytes always
    become U+FFFD, counted and logged by the corpus reader.
    """
    corpus = Path(corpus)
    index = Path(index)
    threads = threads or os.cpu_count() or 1
    _check_target(index, overwrite)
    started = time.perf_counter()

    index.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{index.name}.building-", dir=index.parent))
    try:
        collection = work / "collection"
        documents, duplicates, empty = write_json_collection(corpus, collection, repair_mojibake)
        if documents == 0:
            raise IndexingError(f"{corpus}: no documents to index")

        counters = _run_index_collection(collection, work / "index", threads)
        if counters["errors"] or counters["indexed"] + counters["empty"] != documents:
            raise IndexingError(
                f"Anserini indexed {counters['indexed']} of {documents} documents from {corpus} "
                f"({counters['empty']} empty, {counters['skipped']} skipped, "
                f"{counters['unindexable']} unindexable, {counters['errors']} errors); "
                "see the Anserini log lines above"
            )
        _move_into_place(work / "index", index, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    stats = IndexStats(
        index, documents, duplicates, counters["empty"], counters["indexed"],
        time.perf_counter() - started,
    )
    logger.info(
        "indexed %d of %d documents from %s into %s in %.1f s (%d empty, %d repeated docids dropped)",
        stats.indexed, stats.documents, corpus, index, stats.seconds, stats.empty, stats.duplicates,
    )
    return stats


def _check_target(index: Path, overwrite: bool) -> None:
    if index.exists() and not index.is_dir():
        raise FileExistsError(f"{index} exists and is not a folder; pass another --index path")
    if index.is_dir() and any(index.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{index} already exists; delete it or pass --overwrite to replace it"
        )


def write_json_collection(corpus: Path, folder: Path, repair_mojibake: bool = False) -> tuple[int, int, int]:
    """Write the corpus as a Pyserini JsonCollection into `folder`.

    Returns the number of documents written, of repeated docids dropped and of
    empty documents (written, so Anserini counts them too).
    """
    folder.mkdir(parents=True)
    # NOTE: the docid set stays in memory, an estimated 100 bytes per document.
    seen: set[str] = set()
    duplicates = empty = 0
    output = None
    try:
        for document in iter_corpus(corpus, repair=repair_mojibake):
            if document.docid in seen:
                duplicates += 1
                if duplicates == 1:
                    logger.warning("%s: docid %r repeats; keeping its first document", corpus, document.docid)
                continue

            if len(seen) % DOCUMENTS_PER_FILE == 0:
                if output is not None:
                    output.close()
                output = open(folder / f"docs{len(seen) // DOCUMENTS_PER_FILE:05d}.jsonl", "w", encoding="utf-8")
            seen.add(document.docid)

            contents = document.contents
            if not contents.strip():
                empty += 1
            output.write(json.dumps({"id": document.docid, "contents": contents}, ensure_ascii=False) + "\n")
    finally:
        if output is not None:
            output.close()

    if duplicates:
        logger.warning("%s: dropped %d documents whose docid repeats", corpus, duplicates)
    return len(seen), duplicates, empty


def _run_index_collection(collection: Path, output: Path, threads: int) -> dict[str, int]:
    """Run Anserini's IndexCollection over a JsonCollection folder; return its counters."""
    start_jvm()
    from jnius import JavaException, autoclass

    arguments = [
        "-collection", "JsonCollection",
        "-input", str(collection.resolve()),
        "-index", str(output.resolve()),
        "-threads", str(threads),
        *INDEX_OPTIONS,
    ]
    logger.info("IndexCollection %s", " ".join(arguments))

    # IndexCollection.main prints argument errors and returns normally, so the
    # arguments are parsed here, where a mistake raises, and the counters read back.
    index_args = autoclass("io.anserini.index.IndexCollection$Args")()
    try:
        java_arguments = autoclass("java.util.ArrayList")()
        for argument in arguments:
            java_arguments.add(argument)
        autoclass("org.kohsuke.args4j.CmdLineParser")(index_args).parseArgument(java_arguments)
        indexer = autoclass("io.anserini.index.IndexCollection")(index_args)
        indexer.run()
    except JavaException as error:
        raise IndexingError(f"Anserini IndexCollection failed on {collection}: {error}") from None

    counters = indexer.getCounters()
    return {
        name: int(getattr(counters, name).get())
        for name in ("indexed", "empty", "unindexable", "skipped", "errors")
    }


def _move_into_place(built: Path, index: Path, work: Path) -> None:
    """Rename the built index to `index`; an old index there is moved aside first, then deleted."""
    if index.is_dir() and any(index.iterdir()):
        # A rename cannot replace a non-empty folder, so the old index leaves first.
        os.replace(index, work / "replaced")
    elif index.is_dir():
        index.rmdir()
    os.replace(built, index)


def open_searcher(index: str | os.PathLike):
    """Return a Pyserini LuceneSearcher over an index folder or a Pyserini prebuilt index name.

    A name such as ``beir-v1.0.0-scifact.flat`` or ``msmarco-v1-passage`` is
    downloaded on first use, so it needs the internet unless Pyserini's cache
    (``~/.cache/pyserini/indexes``) has it already.
    """
    text = str(index)
    if os.sep in text or Path(text).exists():
        if not Path(text).is_dir():
            raise FileNotFoundError(
                f"Lucene index folder not found: {text}; build one with python -m dear_ir.index "
                "or pass a Pyserini prebuilt index name"
            )

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    if Path(text).is_dir():
        return LuceneSearcher(text)

    # Pyserini prints "Unrecognized index name" and returns None for an unknown name;
    # a failed download raises URLError, a subclass of OSError.
    try:
        searcher = LuceneSearcher.from_prebuilt_index(text)
    except OSError as error:
        raise OSError(
            f"cannot download the Pyserini prebuilt index {text!r} ({error}); without internet, "
            "build a local index with python -m dear_ir.index and pass its folder"
        ) from None
    if searcher is None:
        raise ValueError(
            f"{text!r} is neither an index folder nor a Pyserini prebuilt index name; list the names with "
            "python -c 'from pyserini.search.lucene import LuceneSearcher as S; S.list_prebuilt_indexes()'"
        )
    return searcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.index",
        description="Build a Lucene index (Pyserini BEIR flat settings) from a JSONL, BEIR JSONL or TSV corpus.",
    )
    parser.add_argument("--corpus", required=True, help="corpus file: JSONL {id, contents}, BEIR JSONL {_id, title, text} or TSV docid<TAB>text, optionally gzipped")
    parser.add_argument("--index", required=True, help="index folder to create")
    parser.add_argument("--threads", type=int, default=None, help="indexing threads (default: the number of CPUs)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    parser.add_argument(
        "--repair-mojibake", action="store_true",
        help="repair mojibake (UTF-8 once decoded as Latin-1) before indexing; off by default, "
        "because Pyserini's published indexes keep the text as published",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        build_index(
            args.corpus, args.index, threads=args.threads, overwrite=args.overwrite,
            repair_mojibake=args.repair_mojibake,
        )
    except (OSError, ValueError, IndexingError, JavaNotFoundError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
