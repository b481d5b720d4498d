"""Teacher-logit dumps: training groups scored once by a teacher, reused by every student.

    python -m dear_ir.dump_teacher --model minilm --input runs/bm25-train.trec \\
        --topics train-topics.tsv --corpus corpus.jsonl --qrels train-qrels.txt \\
        --group-size 8 --output teacher/train.jsonl

DeAR scores each training group with its teacher at every step. A dump scores
each group once, so that training never loads the teacher.

Schema (JSON Lines, UTF-8). The first line is a header:

    {"dear_ir_teacher_dump": 1,
     "teacher": {"name": str, "settings": {...}, "kind": "bi-encoder" | "cross-encoder",
                 "logit_scale": float},
     "sampling": {"group_size": int, "negatives": "head" | "random", "negative_depth": int,
                  "max_positives": int, "min_relevance": int, "seed": int},
     "run": str}

Every other line is one query:

    {"qid": str, "query": str, "positive_source": "qrels" | "teacher",
     "groups": [{"docids": [str, ...], "texts": [str, ...], "relevance": [int | null, ...],
                 "raw_scores": [float, ...], "logits": [float, ...]}, ...]}

Invariants, checked by `read_dump`:

- Each group has `group_size` passages, and the positive is at index 0.
- `positive_source` is "qrels" when the positive is judged relevant
  (`relevance[0] >= min_relevance`). It is "teacher" for a query without
  judgments, whose positive is the passage the teacher scores highest among the
  run's candidates. Such a pseudo-label is only as good as the teacher.
- `relevance` is the qrels grade of each passage, null where unjudged.
  Negatives never carry a grade above 0.
- `raw_scores` are the teacher's outputs as returned (a bi-encoder's cosine, a
  cross-encoder's logit) and `logits = raw_scores * logit_scale`. A cosine
  spans [-1, 1], so at temperature 2 its softmax over a group is nearly
  uniform and the KL term and soft RankNet targets carry almost no signal.
  A bi-encoder's scale of 20 spreads them over [-20, 20].
- A query skipped for want of a positive or of negatives is written as
  ``{"qid": str, "skipped": true}``, so that a restart does not redo it.
- A later header may follow in a file made by concatenating dumps. Its
  teacher must match the first one's, because one student distils one teacher.

Writing is atomic and resumable: queries are appended to `OUTPUT.partial`, one
line each, flushed as each query finishes, and the file is renamed to `OUTPUT`
at the end. A restart with the same settings skips the qids that are already
in the partial file, after dropping a last line cut short by a crash.
Sampling is seeded by (seed, qid), so a resumed dump equals an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tqdm import tqdm

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_KEY = "dear_ir_teacher_dump"

# Cosine times 20 gives logits in [-20, 20], a range like a cross-encoder's.
DEFAULT_BI_ENCODER_SCALE = 20.0

NEGATIVE_MODES = ("head", "random")


class DumpFormatError(ValueError):
    """A teacher dump that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling settings of training groups: size, negative source and depth, positives, seed."""

    group_size: int = 8
    negatives: str = "head"
    negative_depth: int = 30
    max_positives: int = 8
    min_relevance: int = 1
    seed: int = 42

    def __post_init__(self):
        if self.group_size < 2:
            raise ValueError(f"group size must be at least 2 (a positive and a negative), got {self.group_size}")
        if self.negatives not in NEGATIVE_MODES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVE_MODES)}, got {self.negatives!r}")
        if self.negative_depth < 1:
            raise ValueError(f"negative depth must be at least 1, got {self.negative_depth}")
        if self.max_positives < 1:
            raise ValueError(f"max positives must be at least 1, got {self.max_positives}")


@dataclass
class TeacherGroup:
    """One training group read from a dump: the positive first, then negatives."""

    qid: str
    query: str
    docids: list[str]
    texts: list[str]
    logits: list[float]
    positive_source: str


@dataclass
class DumpStats:
    """Counts of what a dump run wrote and skipped, logged at its end."""

    queries: int = 0
    groups: int = 0
    resumed: int = 0
    filled_groups: int = 0
    skipped: Counter = field(default_factory=Counter)

    def log(self, output: Path) -> None:
        logger.info(
            "%s: %d queries and %d groups written (%d queries were already done)",
            output, self.queries, self.groups, self.resumed,
        )
        if self.filled_groups:
            logger.warning(
                "%s: %d groups repeat a negative because the run had too few candidates",
                output, self.filled_groups,
            )
        for reason, count in sorted(self.skipped.items()):
            if count:
                logger.warning("%s: skipped %d %s", output, count, reason)


# ---------------------------------------------------------------------------
# Teacher description


def teacher_header(scorer, logit_scale: float | None) -> dict:
    """Return the header's teacher block: name, settings, kind and logit scale.

    Without an explicit scale a bi-encoder gets `DEFAULT_BI_ENCODER_SCALE`
    and any other scorer gets 1, so cross-encoder logits pass through unchanged.
    """
    kind = "bi-encoder" if is_bi_encoder(scorer) else "cross-encoder"
    if logit_scale is None:
        logit_scale = DEFAULT_BI_ENCODER_SCALE if kind == "bi-encoder" else 1.0
    if not math.isfinite(logit_scale) or logit_scale <= 0:
        raise ValueError(f"logit scale must be a positive number, got {logit_scale}")
    return {
        "name": str(scorer.name),
        "settings": json.loads(json.dumps(dict(scorer.settings), default=str)),
        "kind": kind,
        "logit_scale": float(logit_scale),
    }


def is_bi_encoder(scorer) -> bool:
    """Return whether `scorer` scores by embedding similarity, so its outputs need scaling."""
    try:
        from dear_ir.pointwise import BiEncoderScorer
    except ImportError:
        BiEncoderScorer = None
    if BiEncoderScorer is not None and isinstance(scorer, BiEncoderScorer):
        return True
    settings = getattr(scorer, "settings", {}) or {}
    kind = settings.get("scorer") or settings.get("kind") or ""
    return str(kind).replace("_", "-") == "bi-encoder"


# ---------------------------------------------------------------------------
# Sampling


def _rng_for(seed: int, qid: str) -> random.Random:
    # A string seed is hashed with SHA-512 by `random.seed`, so it is the same
    # in every process, unlike hash() of a string.
    return random.Random(f"{seed}:{qid}")


def _sample_negatives(pool: Sequence[str], count: int, rng: random.Random) -> tuple[list[str], bool]:
    """Return `count` docids drawn from `pool`, and whether some had to repeat."""
    if len(pool) >= count:
        return rng.sample(list(pool), count), False
    # Too few candidates: keep each once, then repeat at random, as DeAR's
    # data loader does, so that every group has the same size.
    negatives = list(pool) + rng.choices(list(pool), k=count - len(pool))
    rng.shuffle(negatives)
    return negatives, True


def _negative_pool(ranked: Sequence[str], excluded: set[str], sampling: SamplingSettings) -> list[str]:
    eligible = [docid for docid in ranked if docid not in excluded]
    if sampling.negatives == "head":
        return eligible[: sampling.negative_depth]
    return eligible


# ---------------------------------------------------------------------------
# Writing


@dataclass
class _QueryPlan:
    """The docids of one query's groups, before the teacher scores them."""

    positive_source: str
    groups: list[list[str]]


def _plan_judged_query(
    qid: str,
    ranked: list[str],
    judgments: Mapping[str, int],
    texts: dict[str, str | None],
    sampling: SamplingSettings,
    stats: DumpStats,
) -> _QueryPlan | None:
    rng = _rng_for(sampling.seed, qid)

    positives = [docid for docid, grade in judgments.items() if grade >= sampling.min_relevance]
    if not positives:
        stats.skipped["queries whose judgments contain no positive"] += 1
        logger.debug("qid %s: no judgment reaches relevance %d", qid, sampling.min_relevance)
        return None
    with_text = [docid for docid in positives if texts.get(docid) is not None]
    stats.skipped["positives absent from the corpus"] += len(positives) - len(with_text)
    if not with_text:
        stats.skipped["queries whose positives are all absent from the corpus"] += 1
        return None

    # Random order within a grade, higher grades first, so that max_positives
    # keeps the clearest positives without favouring the first stage's order.
    with_text.sort()
    rng.shuffle(with_text)
    with_text.sort(key=lambda docid: -judgments[docid])
    chosen = with_text[: sampling.max_positives]

    # Any passage judged above 0 is left out of the negatives, even below
    # min_relevance, because "related" passages make noisy negatives.
    excluded = {docid for docid, grade in judgments.items() if grade > 0}
    pool = _negative_pool(ranked, excluded, sampling)
    if not pool:
        stats.skipped["queries with no unjudged or non-relevant passage in the run"] += 1
        return None

    groups = []
    for positive in chosen:
        negatives, repeated = _sample_negatives(pool, sampling.group_size - 1, rng)
        stats.filled_groups += repeated
        groups.append([positive] + negatives)
    return _QueryPlan("qrels", groups)


def _score(scorer, query: str, docids: Sequence[str], texts: Mapping[str, str]) -> dict[str, float]:
    unique = list(dict.fromkeys(docids))
    raw = scorer.score([(query, texts[docid]) for docid in unique])
    if len(raw) != len(unique):
        raise RuntimeError(f"teacher {scorer.name} returned {len(raw)} scores for {len(unique)} passages")
    scores = {docid: float(value) for docid, value in zip(unique, raw)}
    bad = [docid for docid, value in scores.items() if not math.isfinite(value)]
    if bad:
        raise RuntimeError(f"teacher {scorer.name} returned a non-finite score for docid {bad[0]}")
    return scores


def _build_record(
    qid: str,
    query: str,
    ranked: list[str],
    judgments: Mapping[str, int] | None,
    source,
    scorer,
    sampling: SamplingSettings,
    logit_scale: float,
    skip_missing: bool,
    stats: DumpStats,
) -> dict | None:
    texts: dict[str, str | None] = {}
    available = []
    for docid in ranked:
        text = source.text(docid)
        if text is None:
            if not skip_missing:
                raise KeyError(
                    f"docid {docid!r} (qid {qid}) of the run is not found in {source.name}; "
                    "check that the run and the corpus belong together, or pass --skip-missing"
                )
            stats.skipped["run passages absent from the corpus"] += 1
            continue
        texts[docid] = text
        available.append(docid)
    for docid in judgments or {}:
        if docid not in texts:
            texts[docid] = source.text(docid)

    if judgments:
        plan = _plan_judged_query(qid, available, judgments, texts, sampling, stats)
        if plan is None:
            return None
        scores = _score(scorer, query, [d for group in plan.groups for d in group], texts)
    else:
        # No judgments: the teacher's best candidate becomes the positive.
        candidates = _negative_pool(available, set(), sampling)
        if len(candidates) < 2:
            stats.skipped["unjudged queries with fewer than 2 candidates"] += 1
            return None
        scores = _score(scorer, query, candidates, texts)
        best = max(candidates, key=lambda docid: scores[docid])
        rng = _rng_for(sampling.seed, qid)
        pool = [docid for docid in candidates if docid != best]
        negatives, repeated = _sample_negatives(pool, sampling.group_size - 1, rng)
        stats.filled_groups += repeated
        plan = _QueryPlan("teacher", [[best] + negatives])

    groups = []
    for docids in plan.groups:
        raw = [scores[docid] for docid in docids]
        groups.append({
            "docids": docids,
            "texts": [texts[docid] for docid in docids],
            "relevance": [(judgments or {}).get(docid) for docid in docids],
            "raw_scores": raw,
            "logits": [value * logit_scale for value in raw],
        })
    return {"qid": qid, "query": query, "positive_source": plan.positive_source, "groups": groups}


def partial_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".partial")


def dump_teacher(
    run,
    topics: Mapping[str, str],
    source,
    scorer,
    output: str | os.PathLike,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    sampling: SamplingSettings = SamplingSettings(),
    logit_scale: float | None = None,
    skip_missing: bool = False,
) -> DumpStats:
    """Score training groups of every query of `run` with `scorer` and write the dump.

    `run` is a `dear_ir.runs.Run`; its hits, in rank order, are the negative
    candidates. `qrels` give positives; a query absent from them gets the
    teacher's best candidate as its positive. A complete `output` with the
    same settings is left as it is; a `.partial` file is resumed.
    """
    output = Path(output)
    qrels = qrels or {}
    header = {
        SCHEMA_KEY: SCHEMA_VERSION,
        "teacher": teacher_header(scorer, logit_scale),
        "sampling": asdict(sampling),
        "run": str(getattr(run, "name", "run")),
    }
    stats = DumpStats()

    if output.exists():
        existing = _read_header(output)
        _check_same_settings(existing, header, output)
        logger.info("%s is complete with the same settings; nothing to do", output)
        return stats

    missing_topics = [qid for qid in run if qid not in topics]
    if missing_topics:
        raise KeyError(
            f"{len(missing_topics)} qids of run {header['run']!r} have no topic, e.g. {missing_topics[:5]}; "
            "pass the topics file that belongs to this run"
        )

    partial = partial_path(output)
    done = _prepare_partial(partial, header)
    stats.resumed = len(done)
    logit_scale = header["teacher"]["logit_scale"]

    with open(partial, "a", encoding="utf-8") as handle:
        pending = [qid for qid in run if qid not in done]
        for qid in tqdm(pending, desc="teacher dump", unit="query"):
            record = _build_record(
                qid, topics[qid], run.docids(qid), qrels.get(qid), source, scorer,
                sampling, logit_scale, skip_missing, stats,
            )
            if record is None:
                # A marker line keeps a restart from redoing a skipped query.
                record = {"qid": qid, "skipped": True}
            else:
                stats.queries += 1
                stats.groups += len(record["groups"])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    os.replace(partial, output)
    stats.log(output)
    return stats


def _prepare_partial(partial: Path, header: dict) -> set[str]:
    """Start `partial` with the header, or resume it: return the qids already done."""
    if not partial.exists():
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(header, ensure_ascii=False) + "\n")
        return set()

    _check_same_settings(_read_header(partial), header, partial)
    done: set[str] = set()
    good_end = 0
    with open(partial, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                complete = line.endswith(b"\n")
            except json.JSONDecodeError:
                complete = False
            if not complete:
                # Only the last line can be cut short by a crash, because each
                # earlier one was flushed before the next began.
                if handle.read(1):
                    raise DumpFormatError(
                        f"{partial}:{line_number}: invalid JSON before the last line; "
                        "delete the partial file to start the dump again"
                    )
                logger.warning("%s:%d: dropping a truncated last line; that query is scored again", partial, line_number)
                break
            good_end += len(line)
            if line_number > 1:
                done.add(str(record["qid"]))
    with open(partial, "r+b") as handle:
        handle.truncate(good_end)
    logger.info("%s: resuming after %d finished queries", partial, len(done))
    return done


def _read_header(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or SCHEMA_KEY not in header:
        raise DumpFormatError(
            f"{path}:1: not a dear_ir teacher dump (the first line must be its header); "
            "delete it or choose another --output"
        )
    if header[SCHEMA_KEY] != SCHEMA_VERSION:
        raise DumpFormatError(
            f"{path}:1: teacher dump schema version {header[SCHEMA_KEY]}, expected {SCHEMA_VERSION}"
        )
    return header


# Scorer settings that change speed or placement but not the scores.
_SCORE_NEUTRAL_SETTINGS = ("batch_size", "max_batch_tokens", "device", "show_progress")


def same_teacher(first: dict, second: dict) -> bool:
    """Return whether two header teacher blocks give the same logits.

    Batch sizes and the device are ignored, so that a dump resumed or extended
    on another machine still matches.
    """
    def comparable(teacher: dict) -> dict:
        settings = {k: v for k, v in (teacher.get("settings") or {}).items() if k not in _SCORE_NEUTRAL_SETTINGS}
        return {**teacher, "settings": settings}

    return comparable(first) == comparable(second)


def _check_same_settings(existing: dict, requested: dict, path: Path) -> None:
    for key in ("teacher", "sampling", "run"):
        if key == "teacher":
            matches = same_teacher(existing.get(key) or {}, requested.get(key) or {})
        else:
            matches = existing.get(key) == requested.get(key)
        if not matches:
            raise DumpFormatError(
                f"{path} was written with other {key} settings: {existing.get(key)} "
                f"instead of {requested.get(key)}; delete it or choose another --output"
            )


# ---------------------------------------------------------------------------
# Reading


def read_dump(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[dict, list[TeacherGroup]]:
    """Read one or more dumps and return the teacher block and every group.

    All headers must name the same teacher and group size; a mismatch raises
    `DumpFormatError`. A truncated last line (a dump copied while it was being
    written) is skipped with a warning; any other malformed line raises. A qid
    that appears twice keeps its first record, with a warning.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    teacher = None
    group_size = None
    groups: list[TeacherGroup] = []
    seen: set[str] = set()
    repeated = 0

    for path in map(Path, paths):
        if not path.is_file():
            hint = f"; {partial_path(path)} exists, so that dump has not finished" if partial_path(path).exists() else ""
            raise FileNotFoundError(f"teacher dump not found: {path}{hint}")

        header = None
        for line_number, record in _iter_records(path):
            if SCHEMA_KEY in record:
                header = _read_header_record(record, path, line_number)
                if teacher is None:
                    teacher, group_size = header["teacher"], header["sampling"]["group_size"]
                elif not same_teacher(header["teacher"], teacher):
                    raise DumpFormatError(
                        f"{path}:{line_number}: teacher {header['teacher']} differs from {teacher} "
                        "of an earlier dump; a student distils one teacher, so dump all queries with the same one"
                    )
                elif header["sampling"]["group_size"] != group_size:
                    raise DumpFormatError(
                        f"{path}:{line_number}: group size {header['sampling']['group_size']} differs "
                        f"from {group_size} of an earlier dump; dump every file with the same --group-size"
                    )
                continue
            if header is None:
                raise DumpFormatError(f"{path}:{line_number}: query record before any header")
            if record.get("skipped"):
                continue

            qid = str(record.get("qid"))
            if qid in seen:
                repeated += 1
                continue
            seen.add(qid)
            groups.extend(_groups_of(record, header, path, line_number))

    if repeated:
        logger.warning("teacher dumps: %d qids appear more than once; each keeps its first record", repeated)
    if teacher is None:
        raise DumpFormatError(f"no teacher dump header found in {', '.join(map(str, paths))}")
    if not groups:
        raise DumpFormatError(f"the teacher dumps {', '.join(map(str, paths))} contain no groups")
    return teacher, groups


def _iter_records(path: Path) -> Iterable[tuple[int, dict]]:
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if line_number == len(lines) and not line.endswith(b"\n"):
                logger.warning("%s:%d: skipped a truncated last line (%s)", path, line_number, error.msg)
                return
            raise DumpFormatError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DumpFormatError(f"{path}:{line_number}: expected a JSON object")
        yield line_number, record


def _read_header_record(record: dict, path: Path, line_number: int) -> dict:
    if record[SCHEMA_KEY] != SCHEMA_VERSION:
        raise DumpFormatError(
            f"{path}:{line_number}: teacher dump schema version {record[SCHEMA_KEY]}, expected {SCHEMA_VERSION}"
        )
    for key in ("teacher", "sampling"):
        if not isinstance(record.get(key), dict):
            raise DumpFormatError(f"{path}:{line_number}: header lacks its {key!r} object")
    return record


def _groups_of(record: dict, header: dict, path: Path, line_number: int) -> list[TeacherGroup]:
    where = f"{path}:{line_number} (qid {record.get('qid')})"
    for key in ("qid", "query", "positive_source", "groups"):
        if key not in record:
            raise DumpFormatError(f"{where}: missing field {key!r}")
    min_relevance = header["sampling"]["min_relevance"]
    group_size = header["sampling"]["group_size"]

    groups = []
    for index, group in enumerate(record["groups"]):
        lengths = {key: len(group.get(key) or []) for key in ("docids", "texts", "logits", "relevance")}
        if set(lengths.values()) != {group_size}:
            raise DumpFormatError(
                f"{where}: group {index} has lengths {lengths}, expected {group_size} passages each"
            )
        positive_grade = group["relevance"][0]
        if record["positive_source"] == "qrels" and (positive_grade is None or positive_grade < min_relevance):
            raise DumpFormatError(
                f"{where}: group {index} lacks a positive at index 0 "
                f"(relevance {positive_grade}, needs {min_relevance} or more)"
            )
        if record["positive_source"] not in ("qrels", "teacher"):
            raise DumpFormatError(f"{where}: unknown positive_source {record['positive_source']!r}")
        logits = [float(value) for value in group["logits"]]
        if not all(math.isfinite(value) for value in logits):
            raise DumpFormatError(f"{where}: group {index} has a non-finite teacher logit")
        groups.append(TeacherGroup(
            qid=str(record["qid"]),
            query=record["query"],
            docids=[str(docid) for docid in group["docids"]],
            texts=list(group["texts"]),
            logits=logits,
            positive_source=record["positive_source"],
        ))
    return groups


# ---------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.dump_teacher",
        description="Score training groups with a teacher once and write them as JSON Lines.",
    )
    parser.add_argument("--model", required=True, help="teacher: a model alias, Hugging Face id, folder or GGUF file")
    parser.add_argument("--scorer", default=None, help="scorer kind passed to dear_ir.pointwise.load_scorer (default: chosen by the model)")
    parser.add_argument("--input", required=True, help="TREC run whose hits are the negative candidates")
    parser.add_argument("--topics", required=True, help="topics file or Pyserini topics name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", help="Lucene index folder or Pyserini prebuilt index name")
    source.add_argument("--corpus", help="corpus file (JSONL, TSV or RankGPT candidates JSON)")
    parser.add_argument("--qrels", default=None, help="qrels that give the positives; queries without judgments get the teacher's best candidate")
    parser.add_argument("--output", required=True, help="dump to write (JSON Lines)")

    parser.add_argument("--group-size", type=int, default=8, help="passages per group, the positive included (default 8)")
    parser.add_argument("--negatives", choices=NEGATIVE_MODES, default="head", help="sample negatives from the run's head or from all its hits (default head)")
    parser.add_argument("--negative-depth", type=int, default=30, help="run depth, in passages, that head negatives come from (default 30)")
    parser.add_argument("--max-positives", type=int, default=8, help="groups per judged query, one per positive (default 8)")
    parser.add_argument("--min-relevance", type=int, default=1, help="lowest qrels grade that counts as a positive (default 1; 2 for TREC DL passage)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the negative sampling (default 42)")
    parser.add_argument("--logit-scale", type=float, default=None, help=f"factor from teacher output to logit (default {DEFAULT_BI_ENCODER_SCALE:g} for a bi-encoder, 1 otherwise)")
    parser.add_argument("--batch-size", type=int, default=None, help="teacher batch size, in passages")
    parser.add_argument("--skip-missing", action="store_true", help="drop run hits whose docid is not in the corpus, instead of stopping")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dear_ir.corpus import open_source
    from dear_ir.pointwise import load_scorer
    from dear_ir.runs import read_run
    from dear_ir.topics import load_qrels, load_topics

    sampling = SamplingSettings(
        group_size=args.group_size,
        negatives=args.negatives,
        negative_depth=args.negative_depth,
        max_positives=args.max_positives,
        min_relevance=args.min_relevance,
        seed=args.seed,
    )
    run = read_run(args.input)
    topics = load_topics(args.topics)
    qrels = load_qrels(args.qrels) if args.qrels else {}
    source = open_source(index=args.index, corpus=args.corpus)
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    # The dump has its own progress bar, one step per query.
    scorer = load_scorer(args.model, scorer=args.scorer, show_progress=False, **options)

    dump_teacher(
        run, topics, source, scorer, args.output,
        qrels=qrels, sampling=sampling, logit_scale=args.logit_scale, skip_missing=args.skip_missing,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
