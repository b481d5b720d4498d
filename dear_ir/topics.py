"""Topics (qid -> query), qrels (qid -> docid -> relevance) and QA answer lists.

A spec is a file path or a Pyserini name (``dl19-passage``,
``beir-v1.0.0-scifact-test``, ``dpr-nq-test``). The format of a topics file is
detected from its content, not its suffix, and any file may be gzipped:

- TSV, ``qid<TAB>query`` per line (a ``qid<TAB>query`` header line is skipped);
- DPR QA, ``question<TAB>["answer", ...]`` per line, numbered from 0 as
  Pyserini numbers the DPR topics;
- TREC SGML, ``<top> <num> Number: 301 <title> ... </top>``, and the XML of
  TREC-COVID, ``<topic number="1"><query>...</query></topic>``;
- JSONL, ``{"qid" | "_id" | "id", "query" | "text" | "title" | "question"}``;
- RankGPT candidates JSON, a list of ``{"query", "hits": [{"qid", ...}]}``.

Qids and docids are always strings, so "0019", "19" and "-5" stay different
ids; JSON integers become strings. Pyserini names are read through
Anserini's topic reader with string ids, because `pyserini.search.get_topics`
turns digit-only qids into integers and so drops leading zeros.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from dear_ir.textfile import TextFileError, first_character, read_lines, read_text

logger = logging.getLogger(__name__)

_QID_KEYS = ("qid", "query_id", "_id", "id")
_QUERY_KEYS = ("query", "text", "title", "question")
_FILE_SUFFIXES = {".txt", ".tsv", ".gz", ".json", ".jsonl", ".trec", ".qrels", ".csv", ".xml", ".topics"}


def _is_file_spec(spec: str | os.PathLike) -> bool:
    """Return whether `spec` names a file (existing or not) rather than a Pyserini name."""
    path = Path(spec)
    if path.exists():
        return True
    text = str(spec)
    # Pyserini names contain dots ("beir-v1.0.0-..."), so only known suffixes count.
    return "/" in text or os.sep in text or path.suffix.lower() in _FILE_SUFFIXES


# Anserini 1.x reads named topics and qrels from this folder and downloads
# them from GitHub when they are missing. Offline, only the files copied there can be named.
PYSERINI_CACHE = "~/.cache/pyserini/topics-and-qrels"


def _start_jvm() -> None:
    from dear_ir.java import start_jvm

    start_jvm()


def _unavailable(kind: str, name: str, error: Exception) -> ValueError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ValueError(
        f"Pyserini {kind} {name!r} could not be loaded ({reason}). Anserini looks for them in "
        f"{PYSERINI_CACHE} and otherwise downloads them; without network access pass a {kind} "
        f"file instead, or copy the file into {PYSERINI_CACHE}"
    )


# Topics -------------------------------------------------------------------------------------


def load_topics(spec: str | os.PathLike) -> dict[str, str]:
    """Return ``{qid: query}`` from a topics file or a Pyserini topics name.

    A malformed line raises `TextFileError` naming the file and line; a missing
    file raises FileNotFoundError naming it. A qid that repeats keeps its first
    query, with one warning per file.
    """
    if not _is_file_spec(spec):
        return {qid: fields.get("title", "") for qid, fields in _pyserini_topics(str(spec)).items()}
    return {qid: query for qid, query, _ in _read_topic_records(Path(spec))}


def load_answers(spec: str | os.PathLike) -> dict[str, list[str]]:
    """Return ``{qid: [answer, ...]}`` for open-domain QA topics.

    Sources: a Pyserini DPR topics name (``dpr-nq-test``), a DPR QA file
    (``question<TAB>["answer", ...]``) or JSONL with an ``answers`` list. Topics
    without answers raise ValueError.
    """
    if not _is_file_spec(spec):
        answers = {
            qid: _parse_answer_literal(fields["answers"], f"Pyserini topics {spec}, qid {qid}")
            for qid, fields in _pyserini_topics(str(spec)).items()
            if "answers" in fields
        }
    else:
        answers = {qid: found for qid, _, found in _read_topic_records(Path(spec)) if found is not None}
    if not answers:
        raise ValueError(
            f"topics {spec} carry no answers; pass DPR QA topics (question<TAB>[answers]), "
            "JSONL with an 'answers' list, or a Pyserini DPR topics name such as dpr-nq-test"
        )
    return answers


def _pyserini_topics(name: str) -> dict[str, dict[str, str]]:
    _start_jvm()
    from pyserini.search import _base as pyserini_search

    if name not in pyserini_search.topics_mapping:
        raise ValueError(
            f"{name!r} is neither an existing file nor a Pyserini topics name "
            "(see pyserini.search.topics_mapping); check the path or the name"
        )
    from jnius import JavaException

    try:
        java_topics = pyserini_search.JTopicReader.getTopicsWithStringIds(pyserini_search.topics_mapping[name])
    except JavaException as error:
        raise _unavailable("topics", name, error) from None
    topics = {}
    for qid in java_topics.keySet().toArray():
        fields = java_topics.get(qid)
        topics[str(qid)] = {str(key): str(fields.get(key)) for key in fields.keySet().toArray()}
    logger.info("Pyserini topics %s: %d queries", name, len(topics))
    return topics


def _read_topic_records(path: Path) -> list[tuple[str, str, list[str] | None]]:
    """Return ``(qid, query, answers or None)`` per topic of a file, repeats removed."""
    first = first_character(path)
    if first == "[":
        records = _read_candidates_topics(path)
    elif first == "{":
        records = _read_jsonl_topics(path)
    elif first == "<":
        records = _read_markup_topics(path)
    elif first:
        records = _read_tsv_topics(path)
    else:
        raise TextFileError(f"{path}: the topics file is empty")

    unique: dict[str, tuple[str, str, list[str] | None]] = {}
    for record in records:
        unique.setdefault(record[0], record)
    if len(unique) < len(records):
        logger.warning(
            "%s: %d repeated qids; each keeps its first query", path, len(records) - len(unique)
        )
    empty = sum(1 for _, query, _ in unique.values() if not query.strip())
    if empty:
        logger.warning("%s: %d queries are empty", path, empty)
    return list(unique.values())


def _read_tsv_topics(path: Path) -> list[tuple[str, str, list[str] | None]]:
    records = []
    dpr_format: bool | None = None
    for line_number, line in read_lines(path):
        if not line.strip():
            continue
        if "\t" not in line:
            raise TextFileError(
                f"{path}:{line_number}: expected 'qid<TAB>query', found no tab: {line[:80]!r}"
            )
        first, rest = line.split("\t", 1)

        if dpr_format is None:
            if first.strip().lower() in _QID_KEYS and rest.strip().lower() in _QUERY_KEYS:
                continue  # header line
            dpr_format = _looks_like_answer_list(rest)
        if dpr_format:
            # DPR QA files carry no qids: Pyserini numbers the questions from 0.
            answers = _parse_answer_literal(rest, f"{path}:{line_number}")
            records.append((str(len(records)), first.strip(), answers))
        else:
            qid = first.strip()
            if not qid:
                raise TextFileError(f"{path}:{line_number}: empty qid")
            records.append((qid, rest.strip(), None))
    return records


def _looks_like_answer_list(text: str) -> bool:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return False
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _parse_answer_literal(text: str, where: str) -> list[str]:
    """Parse an answer list written as a JSON or Python list literal, as DPR and Pyserini store them."""
    text = text.strip()
    # Pyserini's DPR topics may wrap the list in CSV quotes with doubled inner quotes.
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1].replace('""', '"')
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise TextFileError(f"{where}: answers {text[:80]!r} are not a list literal") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TextFileError(f"{where}: answers must be a list of strings, found {text[:80]!r}")
    return value


def _read_jsonl_topics(path: Path) -> list[tuple[str, str, list[str] | None]]:
    records = []
    for line_number, line in read_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TextFileError(f"{where}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise TextFileError(f"{where}: expected a JSON object, found {type(record).__name__}")

        qid_key = next((key for key in _QID_KEYS if record.get(key) is not None), None)
        query_key = next((key for key in _QUERY_KEYS if isinstance(record.get(key), str)), None)
        if qid_key is None or query_key is None:
            raise TextFileError(
                f"{where}: expected a qid key {list(_QID_KEYS)} and a query key {list(_QUERY_KEYS)}, "
                f"found keys {sorted(record)}"
            )

        answers = record.get("answers")
        if answers is not None and not (
            isinstance(answers, list) and all(isinstance(answer, str) for answer in answers)
        ):
            raise TextFileError(f"{where}: 'answers' must be a list of strings")
        records.append((str(record[qid_key]), record[query_key].strip(), answers))
    return records


def _read_candidates_topics(path: Path) -> list[tuple[str, str, list[str] | None]]:
    try:
        entries = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise TextFileError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(entries, list):
        raise TextFileError(f"{path}: expected a JSON list of {{\"query\", \"hits\"}} objects")

    records = []
    without_hits = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str):
            raise TextFileError(f"{path}: entry {index} has no 'query' string")
        hits = entry.get("hits") or []
        # RankGPT files store the qid only on the hits.
        if not hits:
            without_hits += 1
            continue
        if not isinstance(hits[0], dict) or hits[0].get("qid") is None:
            raise TextFileError(f"{path}: entry {index} ({entry['query'][:40]!r}): hit 0 has no 'qid'")
        records.append((str(hits[0]["qid"]), entry["query"].strip(), None))
    if without_hits:
        logger.warning("%s: skipped %d queries without hits, whose qid is unknown", path, without_hits)
    return records


_TOP_BLOCK = re.compile(r"<top>(.*?)</top>", re.DOTALL | re.IGNORECASE)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+)", re.IGNORECASE)
# A TREC title may wrap over lines and ends at the next tag.
_TITLE = re.compile(r"<title>\s*(?:Topic:)?(.*?)(?=<[a-z/]|\Z)", re.DOTALL | re.IGNORECASE)


def _read_markup_topics(path: Path) -> list[tuple[str, str, list[str] | None]]:
    text = read_text(path)
    if "<top>" not in text.lower():
        return _read_xml_topics(path, text)

    records = []
    for block in _TOP_BLOCK.finditer(text):
        line_number = text.count("\n", 0, block.start()) + 1
        num = _NUM.search(block.group(1))
        title = _TITLE.search(block.group(1))
        if num is None or title is None:
            raise TextFileError(
                f"{path}:{line_number}: a <top> block without <num> or <title>; "
                "expected '<num> Number: 301' and '<title> query'"
            )
        records.append((num.group(1), " ".join(title.group(1).split()), None))
    if not records:
        raise TextFileError(f"{path}: no <top> ... </top> blocks found")
    return records


def _read_xml_topics(path: Path, text: str) -> list[tuple[str, str, list[str] | None]]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        line_number = error.position[0]
        raise TextFileError(f"{path}:{line_number}: invalid XML topics ({error})") from None

    records = []
    for topic in root.iter("topic"):
        qid = topic.get("number")
        query = topic.findtext("query") or topic.findtext("title")
        if qid is None or query is None:
            raise TextFileError(
                f"{path}: a <topic> without a number attribute or a <query>/<title> element"
            )
        records.append((qid, " ".join(query.split()), None))
    if not records:
        raise TextFileError(f"{path}: expected TREC <top> blocks or XML <topic number=...> elements")
    return records


# Qrels --------------------------------------------------------------------------------------


def load_qrels(spec: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Return ``{qid: {docid: relevance}}`` from a qrels file or a Pyserini qrels name.

    Lines are ``qid iteration docid relevance``; the iteration column (`0`,
    `Q0`) is ignored. A (qid, docid) pair that repeats keeps its last
    judgment, as pytrec_eval and trec_eval do, with one warning per file.
    """
    if _is_file_spec(spec):
        path = Path(spec)
    else:
        path = _pyserini_qrels_file(str(spec))

    qrels: dict[str, dict[str, int]] = {}
    repeated = 0
    for line_number, line in read_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise TextFileError(
                f"{path}:{line_number}: expected 4 columns 'qid 0 docid relevance', "
                f"found {len(fields)}: {line[:80]!r}"
            )
        qid, _, docid, label = fields
        try:
            relevance = int(label)
        except ValueError:
            raise TextFileError(
                f"{path}:{line_number}: relevance {label!r} is not an integer"
            ) from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            repeated += 1
        judged[docid] = relevance

    if repeated:
        logger.warning("%s: %d repeated (qid, docid) judgments; each keeps the last", path, repeated)
    if not qrels:
        raise TextFileError(f"{path}: no judgments found")
    return qrels


def _pyserini_qrels_file(name: str) -> Path:
    _start_jvm()
    from jnius import JavaException
    from pyserini.search import get_qrels_file

    try:
        return Path(get_qrels_file(name))
    except FileNotFoundError:
        raise ValueError(
            f"{name!r} is neither an existing file nor a Pyserini qrels name "
            "(see pyserini.search.qrels_mapping); check the path or the name"
        ) from None
    except JavaException as error:
        raise _unavailable("qrels", name, error) from None
