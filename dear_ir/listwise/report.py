"""Report on listwise runs: clean answers, effectiveness against the input, first-token cost.

    python -m dear_ir.listwise.report \\
        --set dl19 qrels.dl19.txt runs/dl19.minilm.trec runs/dl19.zero-shot.trec runs/dl19.fine-tuned.trec \\
        --first-token dl19 qrels.dl19.txt runs/dl19.w9.trec runs/dl19.w9.first-token.trec \\
        --relevance-level dl19=2

Each listwise run RUN.trec is read with its reasoning sidecar RUN.reasoning.jsonl
(`dear_ir.listwise.rerank` documents the fields). Three tables come out:

- per set and listwise run: the windows whose answer parsed with no repair, and
  nDCG@10 of the pointwise input beside that of the listwise output;
- per first-token comparison: forward passes and model seconds per query, and
  nDCG@10, of generated rankings against first-token rankings.

Both runs of a row are evaluated on the same queries: the judged queries of the
listwise run. A listwise run that is still going is read from
RUN.trec.partial.jsonl, so its row covers the queries finished so far and says
so; a run with neither file shows as missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from dear_ir.evaluate import evaluate_run
from dear_ir.runs import Hit, Run, read_run

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg_cut_10",)


def sidecar_path(run_path: str | os.PathLike) -> Path:
    """Return the reasoning sidecar of a run: ``x.trec`` -> ``x.reasoning.jsonl``."""
    path = Path(run_path)
    stem = path.name[: -len(".trec")] if path.name.endswith(".trec") else path.name
    return path.with_name(f"{stem}.reasoning.jsonl")


def read_sidecar(path: str | os.PathLike) -> list[dict]:
    """Read a reasoning sidecar, one record per (qid, window), the last record winning.

    A rerank that was interrupted after saving a chunk's records but before
    saving its queries redoes those queries on resume and appends their
    records again, so repeats are expected and the later record is the one the
    run used. A torn last line is skipped with a warning.
    """
    path = Path(path)
    records: dict[tuple[str, int], dict] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: incomplete line skipped", path, line_number)
                continue
            records[(str(record["qid"]), int(record["window"]))] = record
    return list(records.values())


def read_partial_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read the finished queries of ``OUTPUT.partial.jsonl`` as a run; the first line contains the settings."""
    path = Path(path)
    run = Run(name=name or path.name)
    with open(path, encoding="utf-8") as handle:
        next(handle, None)
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line; rerank redoes that query
            run[str(record["qid"])] = [Hit(str(docid), float(score)) for docid, score in record["hits"]]
    return run


@dataclass
class ListwiseRun:
    """A listwise run as far as it got: its hits, its window records and whether it is finished."""

    path: Path
    run: Run | None  # None when neither the run nor a partial run exists
    records: list[dict]
    finished: bool

    @property
    def exists(self) -> bool:
        return self.run is not None


def load_listwise_run(path: str | os.PathLike) -> ListwiseRun:
    """Load a run, or the finished queries of its partial run, with its sidecar records."""
    path = Path(path)
    partial = Path(f"{path}.partial.jsonl")
    if path.is_file():
        run, finished = read_run(path), True
    elif partial.is_file():
        run, finished = read_partial_run(partial, name=path.name), False
    else:
        run, finished = None, False

    sidecar = sidecar_path(path)
    records = read_sidecar(sidecar) if sidecar.is_file() else []
    if run is not None:
        # A partial sidecar may hold windows of queries that the run has not saved yet.
        records = [record for record in records if str(record["qid"]) in run]
    return ListwiseRun(path, run, records, finished)


def clean_answers(records: Iterable[dict]) -> tuple[int, int]:
    """Return (windows whose answer needed no repair, windows)."""
    records = list(records)
    return sum(1 for record in records if not record.get("repairs")), len(records)


def cost_per_query(records: Iterable[dict]) -> dict[str, float]:
    """Return the mean forward passes and model seconds per query, and the query and window counts.

    A window's seconds are its model call's wall time divided by the windows
    in that call, as the sidecar records them.
    """
    passes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    windows = 0
    for record in records:
        qid = str(record["qid"])
        passes[qid] = passes.get(qid, 0) + int(record["forward_passes"])
        seconds[qid] = seconds.get(qid, 0.0) + float(record["seconds"])
        windows += 1
    queries = len(passes)
    return {
        "queries": queries,
        "windows": windows,
        "forward_passes": sum(passes.values()) / queries if queries else 0.0,
        "seconds": sum(seconds.values()) / queries if queries else 0.0,
    }


def evaluate_on_queries(
    runs: Mapping[str, Run],
    qrels: Mapping[str, Mapping[str, int]],
    qids: Iterable[str],
    metrics: Iterable[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, dict[str, float]]:
    """Evaluate each run on the judged queries among `qids` only: ``{label: {metric: mean}}``.

    Restricting the qrels lets a run over a subset of the topics (or a run
    still in progress) be compared with the full input run on equal terms,
    because `evaluate_run` counts a judged query missing from a run as 0.
    """
    subset = {qid: qrels[qid] for qid in qids if qid in qrels}
    if not subset:
        return {label: {} for label in runs}
    metrics = list(metrics)
    return {label: evaluate_run(run, subset, metrics, relevance_level) for label, run in runs.items()}


def set_rows(
    name: str,
    qrels: Mapping[str, Mapping[str, int]],
    input_run: Run,
    listwise_paths: Iterable[str | os.PathLike],
    metrics: Iterable[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> list[dict]:
    """Build one report row per listwise run of a set: clean answers and metrics beside the input's."""
    metrics = list(metrics)
    rows = []
    for path in listwise_paths:
        listwise = load_listwise_run(path)
        row = {"set": name, "run": Path(path).name, "status": _status(listwise)}
        if listwise.exists:
            clean, windows = clean_answers(listwise.records)
            scores = evaluate_on_queries(
                {"input": input_run, "listwise": listwise.run}, qrels, listwise.run.keys(), metrics, relevance_level
            )
            row.update(
                queries=sum(1 for qid in listwise.run if qid in qrels),
                clean=clean,
                windows=windows,
                input=scores["input"],
                listwise=scores["listwise"],
            )
        rows.append(row)
    return rows


def first_token_rows(
    name: str,
    qrels: Mapping[str, Mapping[str, int]],
    generated_path: str | os.PathLike,
    first_token_path: str | os.PathLike,
    metrics: Iterable[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> list[dict]:
    """Build the generation and first-token rows of one set, on the queries both runs finished."""
    metrics = list(metrics)
    loaded = {"generation": load_listwise_run(generated_path), "first-token": load_listwise_run(first_token_path)}
    present = {mode: run for mode, run in loaded.items() if run.exists}
    common = None
    for run in present.values():
        common = set(run.run) if common is None else common & set(run.run)
    common = common or set()

    scores = evaluate_on_queries({mode: run.run for mode, run in present.items()}, qrels, common, metrics, relevance_level)
    rows = []
    for mode, run in loaded.items():
        row = {"set": name, "mode": mode, "run": run.path.name, "status": _status(run)}
        if run.exists:
            row.update(cost_per_query(record for record in run.records if str(record["qid"]) in common))
            row["metrics"] = scores[mode]
        rows.append(row)
    return rows


def _status(listwise: ListwiseRun) -> str:
    if listwise.finished:
        return "done"
    if listwise.exists:
        return f"partial, {len(listwise.run)} queries"
    return "missing"


def _percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "-"


def _metric(values: Mapping[str, float], metric: str) -> str:
    return f"{100 * values[metric]:.2f}" if metric in values else "-"


def format_report(set_table: list[dict], first_token_table: list[dict], metrics: Iterable[str] = DEFAULT_METRICS) -> str:
    """Render the rows as Markdown tables; metrics are shown x 100."""
    metrics = list(metrics)
    lines = [
        "| set | run | status | queries | answers parsed with no repair | "
        + " | ".join(f"input {metric} | listwise {metric}" for metric in metrics) + " |",
        "|---|---|---|---|---|" + "---|---|" * len(metrics),
    ]
    for row in set_table:
        if "windows" not in row:
            lines.append(f"| {row['set']} | {row['run']} | {row['status']} | - | - |" + " - | - |" * len(metrics))
            continue
        cells = " | ".join(f"{_metric(row['input'], metric)} | {_metric(row['listwise'], metric)}" for metric in metrics)
        lines.append(
            f"| {row['set']} | {row['run']} | {row['status']} | {row['queries']} | "
            f"{_percent(row['clean'], row['windows'])} | {cells} |"
        )

    if first_token_table:
        lines += [
            "",
            "| set | mode | run | status | queries | windows | forward passes / query | seconds / query | "
            + " | ".join(metrics) + " |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(metrics),
        ]
        for row in first_token_table:
            if "windows" not in row:
                lines.append(f"| {row['set']} | {row['mode']} | {row['run']} | {row['status']} |"
                             + " - |" * (4 + len(metrics)))
                continue
            cells = " | ".join(_metric(row["metrics"], metric) for metric in metrics)
            lines.append(
                f"| {row['set']} | {row['mode']} | {row['run']} | {row['status']} | {row['queries']} | "
                f"{row['windows']} | {row['forward_passes']:.1f} | {row['seconds']:.2f} | {cells} |"
            )
    return "\n".join(lines) + "\n"


def _relevance_levels(pairs: list[str]) -> dict[str, int]:
    levels = {}
    for pair in pairs:
        name, separator, level = pair.partition("=")
        if not separator or not level.isdigit():
            raise SystemExit(f"error: --relevance-level takes SET=LEVEL, such as dl19=2, got {pair!r}")
        levels[name] = int(level)
    return levels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.listwise.report",
        description="Report clean-answer rates, effectiveness and first-token cost of listwise runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--set", nargs="+", action="append", default=[], metavar="ARG",
                        help="NAME QRELS INPUT_RUN LISTWISE_RUN [LISTWISE_RUN ...]: listwise runs of one set "
                             "and the pointwise run they reranked")
    parser.add_argument("--first-token", nargs=4, action="append", default=[],
                        metavar=("NAME", "QRELS", "GENERATED_RUN", "FIRST_TOKEN_RUN"),
                        help="a generated and a first-token listwise run over the same windows")
    parser.add_argument("--relevance-level", action="append", default=[], metavar="SET=LEVEL",
                        help="minimum grade counted relevant by binary metrics for a set, such as dl19=2 "
                             "(nDCG uses the grades)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="trec_eval metrics to report")
    parser.add_argument("--output", default=None, help="also write the report to this Markdown file")
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    return parser


def main(argv: list[str] | None = None) -> int:
    from dear_ir.topics import load_qrels

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    levels = _relevance_levels(args.relevance_level)
    if not args.set and not args.first_token:
        parser.error("give at least one --set or --first-token")

    set_table = []
    for spec in args.set:
        if len(spec) < 4:
            parser.error(f"--set needs NAME QRELS INPUT_RUN LISTWISE_RUN..., got {spec}")
        name, qrels_path, input_path, *listwise_paths = spec
        if not Path(input_path).is_file():
            # The input run comes first in a pipeline, so its listwise runs do not exist yet either.
            set_table += [{"set": name, "run": Path(path).name, "status": f"input run {input_path} missing"}
                          for path in listwise_paths]
            continue
        set_table += set_rows(name, load_qrels(qrels_path), read_run(input_path), listwise_paths,
                              args.metrics, levels.get(name, 1))

    first_token_table = []
    for name, qrels_path, generated, first_token in args.first_token:
        first_token_table += first_token_rows(name, load_qrels(qrels_path), generated, first_token,
                                              args.metrics, levels.get(name, 1))

    report = format_report(set_table, first_token_table, args.metrics)
    print(report, end="")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
