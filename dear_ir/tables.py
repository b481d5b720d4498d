"""The DeAR paper's tables: published numbers against the numbers measured on this machine's runs.

    python -m dear_ir.tables                                  every table
    python -m dear_ir.tables --collections dl19 --model-p minilm --model-l ""

The published numbers live in ``dear_ir/collections.yaml`` (section ``tables``), each table
with its source. A row's ``stages`` name the pipeline that reproduces it, and the run of a
pipeline is ``runs/COLLECTION.STAGE[.STAGE...].trec``: ``runs/dl19.bm25.trec``,
``runs/dl19.bm25.dear-p-8b.trec``, ``runs/dl19.bm25.dear-p-8b.dear-l-8b.trec``, the names
that ``mk/tables.mk`` writes. Models other than DeAR's own checkpoints (``--model-p``,
``--model-l``, or any other run found under the runs folder) add rows without a published number.

Every cell shows the published value, the measured one and their difference. A missing run
shows as missing, with the reason (a file absent from the data folder, or a step not run
yet), never as zero. Values are x 100, as the DeAR paper (arXiv:2508.16998) prints them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dear_ir.collections import (
    REGISTRY_FILE,
    SOURCES,
    Collection,
    RegistryError,
    load_collections,
    load_registry_file,
    resolve,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_P = "dear-p-8b"
DEFAULT_MODEL_L = "dear-l-8b"
FIRST_STAGE = "bm25"


@dataclass(frozen=True)
class Column:
    """One published column: a metric on a collection."""

    collection: str
    metric: str
    label: str


@dataclass(frozen=True)
class PublishedRow:
    """One published run: its values per column, and the dear_ir stages that reproduce it (None for baselines)."""

    run: str
    stages: tuple[str, ...] | None
    values: tuple[float, ...]
    average: float | None = None


@dataclass(frozen=True)
class PublishedTable:
    key: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[PublishedRow, ...]
    average: bool = False


def load_tables(path: str | os.PathLike = REGISTRY_FILE) -> dict[str, PublishedTable]:
    """Return the published tables of the registry; a row whose values do not fit its columns raises RegistryError."""
    registry = load_registry_file(path)
    collections = registry["collections"]
    tables = {}
    for key, entry in (registry.get("tables") or {}).items():
        columns = tuple(Column(c["collection"], c["metric"], c.get("label", c["collection"])) for c in entry["columns"])
        for column in columns:
            if column.collection not in collections:
                raise RegistryError(f"{path}: table {key!r} names unknown collection {column.collection!r}")
        rows = []
        for row in entry["rows"]:
            values = tuple(float(value) for value in row["values"])
            if len(values) != len(columns):
                raise RegistryError(
                    f"{path}: table {key!r}, run {row['run']!r}: {len(values)} values for {len(columns)} columns"
                )
            average = row.get("average")
            if bool(entry.get("average")) != (average is not None):
                raise RegistryError(f"{path}: table {key!r}, run {row['run']!r}: 'average' must be given exactly when the table has one")
            stages = tuple(row["stages"]) if row.get("stages") else None
            rows.append(PublishedRow(row["run"], stages, values, None if average is None else float(average)))
        tables[key] = PublishedTable(key, entry["title"], entry["source"], columns, tuple(rows), bool(entry.get("average")))
    return tables


def model_tag(model: str) -> str:
    """Return the name a model takes in run file names: the last part of its path or hub id.

    >>> model_tag("abdoelsayed/dear-8b-reranker-ce-v1"), model_tag("models/student/"), model_tag("minilm")
    ('dear-8b-reranker-ce-v1', 'student', 'minilm')
    """
    return PurePosixPath(model.rstrip("/")).name


def run_path(runs: str | os.PathLike, collection: str, stages: tuple[str, ...]) -> Path:
    """Return the run file of a pipeline: ``RUNS/COLLECTION.bm25.P.L.trec``."""
    return Path(runs) / f"{collection}.{'.'.join(model_tag(stage) for stage in stages)}.trec"


def requested_pipelines(model_p: str | None, model_l: str | None) -> list[tuple[str, ...]]:
    """Return the pipelines that `make COLLECTION MODEL_P=... MODEL_L=...` runs, shortest first."""
    pipelines = [(FIRST_STAGE,)]
    if model_p:
        pipelines.append((FIRST_STAGE, model_p))
        if model_l:
            pipelines.append((FIRST_STAGE, model_p, model_l))
    return pipelines


# Measuring --------------------------------------------------------------------------------------


@dataclass
class Measured:
    """A measured cell: the value x 100, or None with the reason; `run` is the file it comes from."""

    value: float | None
    reason: str | None
    run: Path


class Measurements:
    """Evaluates the runs under `runs` on demand, each run file once."""

    def __init__(self, runs: str | os.PathLike = "runs", source: str = "auto"):
        self.runs = Path(runs)
        self.source = source
        self.collections = load_collections()
        self._cache: dict[tuple[Path, str], dict[str, float]] = {}

    def measure(self, collection_name: str, stages: tuple[str, ...], metric: str) -> Measured:
        collection = self.collections[collection_name]
        path = run_path(self.runs, collection_name, stages)
        resources = resolve(collection, self.source)

        if not path.is_file():
            needs = ("topics", "first_stage") if len(stages) == 1 else ("topics", "first_stage", "text")
            reason = resources.reason(*needs) or f"not run yet: {_make_command(collection_name, stages)}"
            return Measured(None, reason, path)

        # QA runs are judged by answer strings in the topics, matched in the passage texts.
        judged_by = "topics" if collection.evaluation == "answers" else "qrels"
        missing = resources.reason(judged_by, "text") if judged_by == "topics" else resources.reason(judged_by)
        if missing:
            return Measured(None, f"run exists but cannot be evaluated: {missing}", path)

        values = self._evaluate(collection, path, getattr(resources, judged_by), resources)
        if metric not in values:
            return Measured(None, f"metric {metric} not computed for {collection_name}", path)
        return Measured(100 * values[metric], None, path)

    def _evaluate(self, collection: Collection, path: Path, judgments: str, resources) -> dict[str, float]:
        key = (path, judgments)
        if key in self._cache:
            return self._cache[key]

        from dear_ir.evaluate import evaluate_answers, evaluate_run
        from dear_ir.runs import read_run
        from dear_ir.topics import load_answers, load_qrels

        run = read_run(path)
        if collection.evaluation == "answers":
            from dear_ir.corpus import open_source

            cutoffs = [int(metric.removeprefix("top_")) for metric in collection.metrics]
            source = open_source(**{resources.text.kind: resources.text.location})
            values = evaluate_answers(run, load_answers(judgments), source, cutoffs)
        else:
            metrics = list(dict.fromkeys([*collection.metrics, *self._table_metrics(collection.name)]))
            values = evaluate_run(run, load_qrels(judgments), metrics, relevance_level=collection.relevance_level)
        self._cache[key] = values
        return values

    @staticmethod
    def _table_metrics(collection_name: str) -> list[str]:
        return [column.metric for table in load_tables().values() for column in table.columns
                if column.collection == collection_name]


def _make_command(collection: str, stages: tuple[str, ...]) -> str:
    """Return the make command that produces the run of `stages`, with the model settings it needs."""
    from dear_ir.models import DEAR_CHECKPOINTS

    command = f"make {collection}"
    model_p = stages[1] if len(stages) > 1 else None
    model_l = stages[2] if len(stages) > 2 else None
    if model_p is not None and model_p != DEFAULT_MODEL_P:
        command += f" MODEL_P={model_p}"
    if model_l is not None and model_l != DEFAULT_MODEL_L:
        command += f" MODEL_L={model_l}"
    elif model_l is None and model_p not in (None, DEFAULT_MODEL_P):
        command += " MODEL_L="
    if any(stage in DEAR_CHECKPOINTS for stage in stages):
        command += " (downloads the DeAR checkpoints: needs internet, and a GPU to finish in minutes)"
    return command


# Rendering --------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _difference(published: float | None, measured: float | None) -> str:
    if published is None or measured is None:
        return "—"
    # Rounded first, so that a difference below 0.005 prints as +0.00, not -0.00.
    return f"{round(measured - published, 2) + 0.0:+.2f}"


def render_table(
    table: PublishedTable,
    measurements: Measurements,
    pipelines: list[tuple[str, ...]] | None = None,
    collections: set[str] | None = None,
) -> str | None:
    """Return the Markdown of one table, or None when `collections` leaves none of its columns.

    `pipelines` adds rows for dear_ir pipelines that no published row names.
    """
    columns = [column for column in table.columns if collections is None or column.collection in collections]
    if not columns:
        return None
    with_average = table.average and len(columns) == len(table.columns)

    published_stages = {row.stages for row in table.rows if row.stages}
    pipelines = list(dict.fromkeys([*(pipelines or []), *discover_pipelines(measurements.runs, columns)]))
    rows: list[tuple[str, tuple[str, ...] | None, dict[Column, float], float | None]] = [
        (row.run, row.stages, dict(zip(table.columns, row.values)), row.average) for row in table.rows
    ]
    for stages in pipelines:
        if stages not in published_stages:
            rows.append((" → ".join(["BM25", *(model_tag(stage) for stage in stages[1:])]), stages, {}, None))

    notes: dict[str, int] = {}  # reason -> footnote number, so each reason prints once

    def footnote(reason: str) -> str:
        number = notes.setdefault(reason, len(notes) + 1)
        return f"missing [{number}]"

    lines = [
        f"### {table.title}",
        "",
        f"Published: {table.source}. Values x 100; difference = measured − published.",
        "",
        "| run | column | published | measured | difference | run file or reason |",
        "|---|---|---:|---:|---:|---|",
    ]
    for label, stages, published, published_average in rows:
        measured_values = []
        for column in columns:
            if stages is None:
                measured = Measured(None, "baseline not run by dear_ir", Path())
                note = measured.reason
            else:
                measured = measurements.measure(column.collection, stages, column.metric)
                note = f"`{measured.run}`" if measured.value is not None else footnote(f"{column.collection}: {measured.reason}")
                if measured.value is not None and column not in published:
                    note += " (no published number for this pipeline)"
            measured_values.append(measured.value)
            lines.append(
                f"| {label} | {column.label} | {_number(published.get(column))} | {_number(measured.value)} "
                f"| {_difference(published.get(column), measured.value)} | {note} |"
            )
        if with_average:
            average, note = _average(measured_values, stages)
            if average is None and stages is not None:
                note = footnote(note)
            lines.append(
                f"| {label} | average | {_number(published_average)} | {_number(average)} "
                f"| {_difference(published_average, average)} | {note} |"
            )
    if notes:
        lines.append("")
        lines.extend(f"[{number}] {reason}" for reason, number in notes.items())
    return "\n".join(lines)


def discover_pipelines(runs: Path, columns: list[Column]) -> list[tuple[str, ...]]:
    """Return the pipelines of the run files found in `runs` for the columns' collections, by name.

    A run ``COLLECTION.bm25.P.L.trec`` gives the pipeline ``("bm25", "P", "L")``. A model tag
    with a dot in it splits into two stages, which changes only the row's label.
    """
    found = []
    for collection in dict.fromkeys(column.collection for column in columns):
        for path in sorted(Path(runs).glob(f"{collection}.{FIRST_STAGE}*.trec")):
            stages = tuple(path.name[len(collection) + 1:-len(".trec")].split("."))
            if stages[0] == FIRST_STAGE:
                found.append(stages)
    return sorted(set(found), key=lambda stages: (len(stages), stages))


def _average(values: list[float | None], stages) -> tuple[float | None, str]:
    if stages is None:
        return None, "baseline not run by dear_ir"
    present = [value for value in values if value is not None]
    if len(present) < len(values):
        return None, f"average: needs all {len(values)} collections, {len(present)} measured"
    return sum(present) / len(present), f"mean of the {len(values)} collections"


def render_tables(
    runs: str | os.PathLike = "runs",
    model_p: str | None = DEFAULT_MODEL_P,
    model_l: str | None = DEFAULT_MODEL_L,
    collections: list[str] | None = None,
    table_keys: list[str] | None = None,
    source: str = "auto",
) -> str:
    """Return the Markdown of the selected tables, published against measured."""
    tables = load_tables()
    unknown = [key for key in table_keys or [] if key not in tables]
    if unknown:
        raise RegistryError(f"unknown tables {unknown}; known: {', '.join(tables)}")
    known_collections = load_collections()
    unknown = [name for name in collections or [] if name not in known_collections]
    if unknown:
        raise RegistryError(f"unknown collections {unknown}; known: {', '.join(known_collections)}")

    measurements = Measurements(runs, source)
    pipelines = requested_pipelines(model_p, model_l)
    selected = set(collections) if collections else None
    parts = []
    for key in table_keys or list(tables):
        rendered = render_table(tables[key], measurements, pipelines, selected)
        if rendered:
            parts.append(rendered)
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.tables",
        description="Print the DeAR paper's tables as Markdown: published numbers, measured numbers and the difference.",
    )
    parser.add_argument("--tables", nargs="+", metavar="TABLE", help="tables to print (dl, beir, noveleval, nq; default: all)")
    parser.add_argument("--collections", nargs="+", metavar="COLLECTION", help="keep only the columns of these collections")
    parser.add_argument("--model-p", default=DEFAULT_MODEL_P,
                        help=f"DeAR-P model of the measured pipeline (default: {DEFAULT_MODEL_P}); empty: none")
    parser.add_argument("--model-l", default=DEFAULT_MODEL_L,
                        help=f"DeAR-L model of the measured pipeline (default: {DEFAULT_MODEL_L}); empty: none")
    parser.add_argument("--runs", default="runs", help="folder of the run files (default: runs)")
    parser.add_argument("--source", choices=SOURCES, default="auto", help="where missing runs' data would come from, for the reasons")
    parser.add_argument("--output", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    # Evaluation logs each run at INFO; the tables are the output.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        markdown = render_tables(args.runs, args.model_p, args.model_l, args.collections, args.tables, args.source)
    except (RegistryError, OSError, ValueError, KeyError) as error:
        logger.error("%s", error)
        return 1
    print(markdown, end="")
    if args.output:
        from dear_ir.runs import atomic_write_lines

        atomic_write_lines(args.output, [markdown])
    return 0


if __name__ == "__main__":
    sys.exit(main())
