"""Corpora: document text by docid, from a file or a Lucene index.

The file format is detected from the content, not the suffix, and any file may be gzipped:

- JSONL, one document per line: Pyserini's ``{"id", "contents"}``, or
  ``{"id" | "_id" | "docid", "title", "text"}`` as in BEIR.
- TSV, ``docid<TAB>text`` per line as in MS MARCO. A header line is skipped;
  a header that names its columns (``id<TAB>text<TAB>title`` as in DPR's
  Wikipedia passages) also sets which column is which.
- RankGPT candidates JSON: a list of ``{"query", "hits": [{"docid", "content"}]}``.

Docids are always strings. Invalid UTF-8 bytes become U+FFFD and mojibake is
repaired (see `dear_ir.textfile`); both are counted and logged per file, and
empty documents are allowed and counted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dear_ir.textfile import (
    HygieneCounts,
    TextFileError,
    check_file,
    first_character,
    read_lines,
    read_text,
    repair_mojibake,
)

logger = logging.getLogger(__name__)

# Column names accepted for the docid, title and text in JSONL keys and TSV headers.
_ID_KEYS = ("id", "_id", "docid", "doc_id", "pid")
_TITLE_KEYS = ("title",)
_TEXT_KEYS = ("contents", "text", "passage", "content", "body")


@dataclass(frozen=True)
class Document:
    """One document of a corpus: its docid, title ("" when it has none) and text."""

    docid: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """Title and text joined with a space, or the text alone when there is no title.

        This is the field Pyserini indexes, and the passage text rerankers see.
        """
        return f"{self.title} {self.text}" if self.title else self.text


def iter_corpus(path: str | os.PathLike, repair: bool = True) -> Iterator[Document]:
    """Yield the documents of a JSONL, TSV or RankGPT candidates JSON corpus file.

    `repair` repairs mojibake. Turn it off to feed a model the text exactly as
    published, for instance to reproduce numbers measured on the raw text.

    A record with ``contents`` yields it as the text with an empty title,
    because that field is what Pyserini indexes. Other records keep ``title``
    and ``text`` apart. A malformed line raises `TextFileError` naming the file
    and line, and a missing file raises FileNotFoundError.
    """
    path = check_file(path)
    first = first_character(path)
    counts = HygieneCounts(path, repair)
    if first == "[":
        yield from _iter_candidates_json(path, counts)
    elif first == "{":
        yield from _iter_jsonl(path, counts)
    elif first:
        yield from _iter_tsv(path, counts)
    else:
        logger.warning("%s: the corpus file is empty", path)


def _iter_jsonl(path: Path, counts: HygieneCounts) -> Iterator[Document]:
    for line_number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TextFileError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
        document = _document_from_record(record, counts, f"{path}:{line_number}")
        if not document.contents.strip():
            counts.empty += 1
        yield document
    counts.log("documents")


def _document_from_record(record, counts: HygieneCounts, where: str) -> Document:
    if not isinstance(record, dict):
        raise TextFileError(f"{where}: expected a JSON object, found {type(record).__name__}")

    id_key = next((key for key in _ID_KEYS if key in record), None)
    if id_key is None or record[id_key] is None:
        raise TextFileError(f"{where}: no docid; expected one of the keys {list(_ID_KEYS)}")
    docid = str(record[id_key]).strip()
    if not docid:
        raise TextFileError(f"{where}: empty docid")

    for key in ("title", *_TEXT_KEYS):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise TextFileError(
                f"{where}: docid {docid!r}: {key!r} must be a string, found {type(record[key]).__name__}"
            )

    if "contents" in record:
        return Document(docid, "", counts.clean(record["contents"]))
    text_key = next((key for key in _TEXT_KEYS if key in record), None)
    if text_key is None:
        raise TextFileError(
            f"{where}: docid {docid!r} has no text; expected one of the keys {list(_TEXT_KEYS)}"
        )
    return Document(docid, counts.clean(record.get("title")), counts.clean(record[text_key]))


def _iter_tsv(path: Path, counts: HygieneCounts) -> Iterator[Document]:
    columns: dict[str, int] | None = None
    for line_number, line in read_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")

        if columns is None:
            columns = _header_columns(fields)
            if columns:
                logger.debug("%s: header %s", path, fields)
                continue
            columns = {}

        if columns:
            if len(fields) <= max(columns.values()):
                raise TextFileError(
                    f"{path}:{line_number}: expected {len(columns)} tab-separated columns "
                    f"as in the header, found {len(fields)}"
                )
            docid = fields[columns["id"]]
            title = fields[columns["title"]] if "title" in columns else ""
            text = fields[columns["text"]]
        else:
            if len(fields) < 2:
                raise TextFileError(
                    f"{path}:{line_number}: expected 'docid<TAB>text', found no tab: {line[:80]!r}"
                )
            # Split at the first tab only, so a tab inside the text stays text.
            docid, text = line.split("\t", 1)
            title = ""

        if not docid.strip():
            raise TextFileError(f"{path}:{line_number}: empty docid")
        document = Document(docid.strip(), counts.clean(title), counts.clean(text))
        if not document.contents.strip():
            counts.empty += 1
        yield document
    counts.log("documents")


def _header_columns(fields: list[str]) -> dict[str, int]:
    """Return ``{"id": i, "text": j[, "title": k]}`` when `fields` is a header line, else {}."""
    names = [field.strip().lower() for field in fields]
    if names[0] not in _ID_KEYS:
        return {}
    columns = {"id": 0}
    for index, name in enumerate(names[1:], start=1):
        if name in _TEXT_KEYS and "text" not in columns:
            columns["text"] = index
        elif name in _TITLE_KEYS and "title" not in columns:
            columns["title"] = index
    if "text" not in columns:
        # A first line such as "id<TAB>some text" is data, not a header.
        return {}
    return columns


def _iter_candidates_json(path: Path, counts: HygieneCounts) -> Iterator[Document]:
    entries = _load_candidates_json(path)
    seen: set[str] = set()
    for entry_index, entry in enumerate(entries):
        for hit_index, hit in enumerate(entry.get("hits") or []):
            where = f"{path}: query {entry_index}, hit {hit_index}"
            if not isinstance(hit, dict) or hit.get("docid") is None:
                raise TextFileError(f"{where}: expected an object with 'docid' and 'content'")
            docid = str(hit["docid"])
            # A passage retrieved for several queries appears once per query.
            if docid in seen:
                continue
            seen.add(docid)
            if "content" not in hit:
                raise TextFileError(f"{where}: docid {docid!r} has no 'content'")
            if hit["content"] is not None and not isinstance(hit["content"], str):
                raise TextFileError(f"{where}: docid {docid!r}: 'content' must be a string")
            document = Document(docid, "", counts.clean(hit["content"]))
            if not document.text.strip():
                counts.empty += 1
            yield document
    counts.log("passages")


def _load_candidates_json(path: Path) -> list[dict]:
    """Load a RankGPT candidates file: a JSON list of ``{"query", "hits": [...]}``."""
    try:
        entries = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise TextFileError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise TextFileError(
            f"{path}: expected a RankGPT candidates file, a JSON list of "
            '{"query": ..., "hits": [...]} objects'
        )
    return entries


class CorpusFile:
    """A `DocumentSource` over a corpus file, held in memory as ``{docid: Document}``.

    A docid that repeats keeps its first text, with one warning per file.
    """

    def __init__(self, path: str | os.PathLike, repair: bool = True):
        self.path = Path(path)
        self.name = str(self.path)
        self._documents: dict[str, Document] = {}
        duplicates = 0
        for document in iter_corpus(self.path, repair):
            if document.docid in self._documents:
                duplicates += 1
                continue
            self._documents[document.docid] = document
        if duplicates:
            logger.warning("%s: %d repeated docids; each keeps its first text", self.path, duplicates)
        logger.info("%s: %d documents", self.path, len(self._documents))

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, docid: object) -> bool:
        return docid in self._documents

    def document(self, docid: str) -> Document | None:
        return self._documents.get(docid)

    def text(self, docid: str) -> str | None:
        document = self._documents.get(docid)
        return None if document is None else document.contents


class LuceneDocuments:
    """A `DocumentSource` over the stored documents of a Lucene index.

    `index` is a local index folder or a Pyserini prebuilt index name (such as
    ``msmarco-v1-passage``). The index must store raw documents, as Pyserini's
    ``--storeRaw`` or ``--storeContents`` does.
    """

    def __init__(self, index: str | os.PathLike, repair: bool = True):
        index = str(index)
        is_folder = Path(index).is_dir()
        if not is_folder and (os.sep in index or Path(index).exists()):
            raise FileNotFoundError(
                f"Lucene index not found: {index}; pass an index folder or a Pyserini prebuilt index name"
            )

        from dear_ir.java import start_jvm

        start_jvm()
        from pyserini.search.lucene import LuceneSearcher

        if is_folder:
            self.searcher = LuceneSearcher(index)
        else:
            # Pyserini downloads a prebuilt index on first use, so this needs the
            # network unless the index is already in Pyserini's cache (~/.cache/pyserini/indexes).
            try:
                self.searcher = LuceneSearcher.from_prebuilt_index(index)
            except OSError as error:
                raise OSError(
                    f"Pyserini prebuilt index {index!r} is not cached and could not be downloaded ({error}); "
                    "pass a local index folder instead"
                ) from None
            if self.searcher is None:
                raise ValueError(f"{index!r} is neither an index folder nor a Pyserini prebuilt index name")
        self.name = index
        self.repair = repair
        self.repaired = 0

    def document(self, docid: str) -> Document | None:
        """Return the stored document (mojibake repaired unless turned off), or None when the index lacks the docid."""
        stored = self.searcher.doc(docid)
        if stored is None:
            return None
        document = self._parse_stored(docid, stored)
        if not self.repair:
            return document
        repaired = Document(docid, repair_mojibake(document.title), repair_mojibake(document.text))
        if repaired != document:
            self.repaired += 1
            if self.repaired == 1:
                logger.info("%s: repaired mojibake in docid %s (later repairs are not logged)", self.name, docid)
        return repaired

    def text(self, docid: str) -> str | None:
        document = self.document(docid)
        return None if document is None else document.contents

    @staticmethod
    def _parse_stored(docid: str, stored) -> Document:
        # Pyserini's JSON collections store the input record as the raw field;
        # other collections store plain text there, or only the contents field.
        raw = stored.raw()
        if raw:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                return Document(docid, "", raw)
            if isinstance(record, dict):
                if "contents" in record:
                    return Document(docid, "", record["contents"] or "")
                if "text" in record:
                    return Document(docid, record.get("title") or "", record["text"] or "")
        return Document(docid, "", stored.contents() or "")


def open_source(
    index: str | os.PathLike | None = None,
    corpus: str | os.PathLike | None = None,
    repair: bool = True,
):
    """Return the `DocumentSource` for a Lucene index or a corpus file; exactly one must be given.

    `repair` repairs mojibake in the texts returned.
    """
    if (index is None) == (corpus is None):
        raise ValueError(
            "pass exactly one document source: a Lucene index (--index) or a corpus file (--corpus)"
        )
    if corpus is not None:
        return CorpusFile(corpus, repair)
    return LuceneDocuments(index, repair)
