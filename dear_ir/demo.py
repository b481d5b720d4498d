"""`python -m dear_ir.demo`: one Markdown table of runs over several collections.

    python -m dear_ir.demo --collection scifact QRELS RUN [RUN ...] \\
                           --collection dl19 QRELS RUN [RUN ...] --relevance-level dl19=2

Each row is one run on one collection, evaluated with `dear_ir.evaluate`
against that collection's qrels; `make demo` prints its table with this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dear_ir.evaluate import DEFAULT_METRICS, evaluate_run, markdown_table
from dear_ir.runs import read_run
from dear_ir.topics import load_qrels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dear_ir.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--collection", nargs="+", action="append", required=True,
                        metavar=("NAME QRELS", "RUN"), help="a collection name, its qrels, then its runs")
    parser.add_argument("--relevance-level", action="append", default=[], metavar="NAME=LEVEL",
                        help="minimum label counted relevant for MAP and recall on one collection (default 1)")
    args = parser.parse_args(argv)

    levels = dict(item.split("=", 1) for item in args.relevance_level)
    rows = {}
    for name, qrels_path, *runs in args.collection:
        if not runs:
            parser.error(f"--collection {name} names no run")
        qrels = load_qrels(qrels_path)
        for run_path in runs:
            run = read_run(run_path)
            label = f"{name}: {Path(run_path).name}"
            rows[label] = evaluate_run(run, qrels, DEFAULT_METRICS, relevance_level=int(levels.get(name, 1)))
    print(markdown_table(rows, first_column="collection: run"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
