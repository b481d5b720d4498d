"""Listwise fine-tuning data in DeAR-COT's JSONL layout, built from a teacher ranking.

    python -m dear_ir.listwise.data --input runs/bm25.trec --topics T --corpus C \\
        --qrels Q --output train/listwise.jsonl

Each row is one window of one query, in the Alpaca-with-history layout that
LLaMA-Factory reads and DeAR-COT uses:

    system       the system turn of the prompt
    history      [[user, assistant], ...]: the announcement turn and one pair per passage
    instruction  the final user turn: the query, the three steps and the output format
    input        always "" because the passages are in the history
    output       the target answer: the reasoning in <think> tags when there is one, then the ranking
    think        the reasoning alone, "" when the teacher gives none
    qid, docids  dear_ir's additions: the query and the window's docids in prompt order

The conversation comes from `dear_ir.listwise.prompt`, so the rows, the
trainer and the reranker share one prompt. The target ranking sorts the window
by the teacher's scores, which are a run's scores or qrels grades. Ties keep
their prompt order, and passages that the teacher does not score come last.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from dear_ir.candidates import Candidates
from dear_ir.listwise.prompt import DEFAULT_MAX_WORDS, build_messages, format_target
from dear_ir.listwise.windows import sliding_windows
from dear_ir.runs import Run, atomic_write_lines

logger = logging.getLogger(__name__)

ROW_KEYS = ("system", "instruction", "input", "output", "history", "think")


def teacher_order(docids: list[str], scores: Mapping[str, float]) -> list[int]:
    """Return 0-based positions of `docids` by decreasing teacher score, unscored last, ties stable.

    >>> teacher_order(["a", "b", "c", "d"], {"b": 2, "c": 0, "d": 2})
    [1, 3, 2, 0]
    """
    def key(position: int) -> float:
        return -scores.get(docids[position], -math.inf)

    return sorted(range(len(docids)), key=key)


def teacher_from_run(run: Run) -> dict[str, dict[str, float]]:
    """Return a run's scores as ``{qid: {docid: score}}``, the teacher form that `build_rows` reads."""
    return {qid: {hit.docid: hit.score for hit in hits} for qid, hits in run.items()}


def row_from_messages(messages: list[dict[str, str]], output: str, think: str = "") -> dict:
    """Lay out a prompt's messages and target answer as a DeAR-COT row."""
    if messages[0]["role"] != "system" or messages[-1]["role"] != "user":
        raise ValueError("a row needs a system turn first and a user turn last")
    turns = messages[1:-1]
    if [turn["role"] for turn in turns] != ["user", "assistant"] * (len(turns) // 2) or len(turns) % 2:
        raise ValueError("the turns between the system turn and the last user turn must alternate user, assistant")
    return {
        "system": messages[0]["content"],
        "instruction": messages[-1]["content"],
        "input": "",
        "output": output,
        "history": [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns), 2)],
        "think": think,
    }


def messages_from_row(row: Mapping) -> tuple[list[dict[str, str]], str]:
    """Return (messages, target answer) of a DeAR-COT row, as the trainer feeds them to the prompt.

    The instruction and a non-empty input are joined by a newline, as
    LLaMA-Factory joins them. A row whose `think` is not already inside its
    output gets it prepended in <think> tags.
    """
    missing = [key for key in ROW_KEYS if key not in row and key not in ("input", "history", "think")]
    if missing:
        raise ValueError(f"row of qid {row.get('qid', '?')} lacks {missing}; expected the keys {list(ROW_KEYS)}")

    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": row["system"]})
    for user, assistant in row.get("history") or []:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    instruction = row["instruction"] + ("\n" + row["input"] if row.get("input") else "")
    messages.append({"role": "user", "content": instruction})

    target = row["output"]
    think = (row.get("think") or "").strip()
    if think and "</think>" not in target.lower():
        target = f"<think>\n{think}\n</think>\n\n{target.strip()}"
    return messages, target


def build_rows(
    queries: Iterable[Candidates],
    teacher: Mapping[str, Mapping[str, float]],
    window: int = 20,
    step: int = 10,
    rank_end: int | None = 20,
    max_words: int = DEFAULT_MAX_WORDS,
    shuffle: bool = False,
    seed: int = 0,
    reasoning: Mapping[str, str] | None = None,
) -> Iterator[dict]:
    """Yield one DeAR-COT row per window of each query, with the teacher's ranking as target.

    Windows follow `sliding_windows` over the first-stage order, so training
    sees the windows that reranking sees. `shuffle` permutes each window's
    passages before they are numbered, with a generator seeded by `seed`, so
    that the model cannot learn to echo the first-stage order. A window where
    the teacher scores no passage or all alike teaches no ranking and is
    skipped; the skips are logged. `reasoning` maps a qid to a rationale for
    its first window, when a teacher such as GPT-4o wrote one.
    """
    generator = random.Random(seed)
    skipped = written = 0
    for query in queries:
        scores = teacher.get(query.qid, {})
        for window_index, (start, end) in enumerate(sliding_windows(len(query.passages), window, step, rank_end)):
            passages = query.passages[start:end]
            if shuffle:
                passages = generator.sample(passages, len(passages))
            docids = [passage.docid for passage in passages]
            if len({scores.get(docid, -math.inf) for docid in docids}) < 2:
                skipped += 1
                continue

            messages = build_messages(query.query, [passage.text for passage in passages], max_words)
            think = (reasoning or {}).get(query.qid, "") if window_index == 0 else ""
            row = row_from_messages(messages, format_target(teacher_order(docids, scores), think), think)
            row.update(qid=query.qid, docids=docids)
            written += 1
            yield row

    if skipped:
        logger.warning("skipped %d windows whose passages the teacher scores alike or not at all", skipped)
    logger.info("built %d listwise training rows", written)


def write_rows(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write rows as JSONL, atomically."""
    path = Path(path)
    atomic_write_lines(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Read DeAR-COT rows from JSONL (one object a line) or a JSON list."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not a JSON object ({error})") from None
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.listwise.data",
        description="Build DeAR-COT-style listwise fine-tuning rows from a first-stage run and a teacher ranking.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="first-stage TREC run whose order the windows follow")
    parser.add_argument("--topics", required=True, help="topics: a Pyserini name or a topics file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", help="Lucene index folder or Pyserini prebuilt index name for passage text")
    source.add_argument("--corpus", help="corpus file for passage text")
    teacher = parser.add_mutually_exclusive_group(required=True)
    teacher.add_argument("--qrels", help="teacher ranking from relevance grades (unjudged passages rank last)")
    teacher.add_argument("--teacher-run", help="teacher ranking from a TREC run's scores, e.g. a DeAR-P run")
    parser.add_argument("--output", required=True, help="JSONL file to write")
    parser.add_argument("--window", type=int, default=20, help="passages per row")
    parser.add_argument("--step", type=int, default=10, help="passages between the ends of consecutive windows")
    parser.add_argument("--rank-end", type=int, default=20, help="build windows over the first N passages of the run")
    parser.add_argument("--hits", type=int, default=None, help="read at most this many hits per query from --input")
    parser.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="words kept of each passage")
    parser.add_argument("--shuffle", action="store_true", help="shuffle each window's passages before numbering them")
    parser.add_argument("--seed", type=int, default=0, help="seed of --shuffle")
    parser.add_argument("--skip-missing", action="store_true", help="drop hits whose docid is not in the corpus")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    return parser


def main(argv: list[str] | None = None) -> int:
    from dear_ir.candidates import build_candidates
    from dear_ir.corpus import open_source
    from dear_ir.runs import read_run
    from dear_ir.topics import load_qrels, load_topics

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    run = read_run(args.input, max_hits=args.hits)
    source = open_source(index=args.index, corpus=args.corpus)
    queries = build_candidates(run, load_topics(args.topics), source, skip_missing=args.skip_missing)
    if args.qrels:
        teacher = {qid: {docid: float(grade) for docid, grade in grades.items()} for qid, grades in load_qrels(args.qrels).items()}
    else:
        teacher = teacher_from_run(read_run(args.teacher_run))

    rows = build_rows(
        queries, teacher, window=args.window, step=args.step, rank_end=args.rank_end,
        max_words=args.max_words, shuffle=args.shuffle, seed=args.seed,
    )
    write_rows(rows, args.output)
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
