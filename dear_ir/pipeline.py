"""The steps behind `make dl19`, `make beir` and the other table targets, one collection at a time.

    python -m dear_ir.pipeline first-stage dl19 --output runs/dl19.bm25.trec --hits 100
    python -m dear_ir.pipeline rerank dl19 --stage pointwise --model minilm \\
        --input runs/dl19.bm25.trec --output runs/dl19.bm25.minilm.trec [-- RERANK OPTIONS]

Each step calls `dear_ir.collections.resolve` to find where the collection's topics, first-stage run
and passage texts come from (offline files or Pyserini), then runs `dear_ir.bm25`,
`dear_ir.index` or `dear_ir.rerank` as a subprocess, so every run's ``RUN.meta.json``
records the command that made it. A first stage read from a run file or scored by
`dear_ir.okapi` is written here, with its own metadata.

When data is missing, ``--on-missing stop`` (the default) exits with status 2 and names
the files. ``--on-missing skip`` logs the reason and exits 0 without an output, so that
`make beir` goes on with the collections that can run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from dear_ir.collections import SOURCES, MissingDataError, Resources, get_collection, resolve
from dear_ir.runs import read_run, write_metadata, write_run

logger = logging.getLogger(__name__)


class StepFailedError(RuntimeError):
    """A subprocess of a pipeline step exited with an error."""


def run_module(module: str, arguments: list[str], environment: dict[str, str] | None = None) -> None:
    """Run ``python -m module arguments`` with this interpreter; raise StepFailedError when it fails."""
    command = [sys.executable, "-m", module, *arguments]
    logger.info("running: %s", shlex.join(["python", "-m", module, *arguments]))
    completed = subprocess.run(command, env={**os.environ, **(environment or {})})
    if completed.returncode != 0:
        raise StepFailedError(f"{module} exited with status {completed.returncode}; its log above names the cause")


# First stage ------------------------------------------------------------------------------------


def first_stage(resources: Resources, output: Path, hits: int = 100, threads: int = 1) -> None:
    """Write the first-stage run of the collection to `output`: BM25 top `hits` per query."""
    resources.require("topics", "first_stage")
    stage = resources.first_stage

    if stage.kind == "run":
        run = read_run(stage.location, max_hits=hits)
        write_run(run, output, tag="bm25")
        write_metadata(output, {"collection": resources.collection.name, "copied_from": stage.location, "hits": hits},
                       queries=len(run))
        logger.info("%s: first stage read from %s (%d queries)", resources.collection.name, stage.location, len(run))
        return

    if stage.kind == "okapi":
        _okapi_first_stage(resources, output, hits)
        return

    if stage.kind == "index" and not Path(stage.location).is_dir():
        run_module("dear_ir.index", ["--corpus", stage.corpus, "--index", stage.location, "--threads", str(threads)])
    run_module("dear_ir.bm25", [
        "--index", stage.location, "--topics", judged_topics(resources, output), "--output", str(output),
        "--hits", str(hits), "--threads", str(threads),
    ])


def judged_topics(resources: Resources, output: Path) -> str:
    """Return a topics file of the judged queries only, written beside `output`, or the full topics.

    Unjudged queries do not count in any metric (TREC DL 2020 judges 54 of its 200 topics),
    so retrieving and reranking them would only cost time. Without qrels, or when every
    query is judged, the topics are returned unchanged.
    """
    from dear_ir.runs import atomic_write_lines
    from dear_ir.topics import load_qrels, load_topics

    if resources.qrels is None:
        return resources.topics
    topics = load_topics(resources.topics)
    judged = load_qrels(resources.qrels)
    kept = {qid: query for qid, query in topics.items() if qid in judged}
    if len(kept) == len(topics):
        return resources.topics

    path = Path(f"{output}.topics.tsv")
    # Queries are written on one line each, as the TSV topics format requires.
    atomic_write_lines(path, [f"{qid}\t{' '.join(query.split())}\n" for qid, query in kept.items()])
    logger.info("%s: %d of %d topics are judged; the first stage retrieves for those (%s)",
                resources.collection.name, len(kept), len(topics), path)
    return str(path)


def _okapi_first_stage(resources: Resources, output: Path, hits: int) -> None:
    from dear_ir.candidates import build_candidates
    from dear_ir.corpus import open_source
    from dear_ir.okapi import B, EPSILON, K1, rank_candidates
    from dear_ir.runs import Run
    from dear_ir.topics import load_topics

    candidates_file = resources.first_stage.location
    # The candidates file keeps each query's passages in their published order; that order
    # is the input run, so Okapi ties stay in it.
    with open(candidates_file, encoding="utf-8") as handle:
        entries = json.load(handle)
    order = Run({str(entry["hits"][0]["qid"]): [(hit["docid"], -rank) for rank, hit in enumerate(entry["hits"])]
                 for entry in entries if entry.get("hits")})
    source = open_source(corpus=candidates_file, repair=False)
    candidates = build_candidates(order, load_topics(resources.topics), source)

    run = rank_candidates(candidates, hits=hits)
    write_run(run, output, tag="okapi-bm25")
    write_metadata(output, {
        "collection": resources.collection.name, "okapi_bm25_over": candidates_file, "topics": resources.topics,
        "k1": K1, "b": B, "epsilon": EPSILON, "hits": hits,
    }, queries=len(run))
    logger.info("%s: Okapi BM25 over each query's candidates in %s (%d queries)",
                resources.collection.name, candidates_file, len(run))


# Rerankers --------------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    """Return `device`, with ``auto`` turned into ``cuda`` when a GPU is visible and ``cpu`` otherwise."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str | None:
    """Return the weight dtype: ``auto`` is bfloat16 on a GPU (as DeAR ran) and the stored dtype on a CPU."""
    if dtype != "auto":
        return dtype or None
    return "bfloat16" if device.startswith("cuda") else None


def is_hub_model(model: str) -> bool:
    """Return whether `model` is loaded from the Hugging Face hub rather than a local folder or package."""
    from dear_ir.models import DEAR_CHECKPOINTS

    if model in DEAR_CHECKPOINTS:
        return True
    return "/" in model and not Path(model).exists() and not model.startswith((".", "/"))


def rerank(
    resources: Resources,
    stage: str,
    model: str,
    input_run: Path,
    output: Path,
    device: str = "auto",
    dtype: str = "auto",
    extra: list[str] | None = None,
    allow_hub_download: bool = False,
) -> None:
    """Rerank `input_run` with one stage (pointwise or listwise) of `model`, writing `output`."""
    resources.require("topics", "text")
    if not input_run.is_file():
        raise MissingDataError(f"{resources.collection.name}: input run {input_run} not found; run its first stage first")

    device = resolve_device(device)
    arguments = [
        "--stage", stage, "--model", model, "--input", str(input_run), "--output", str(output),
        "--topics", resources.topics, *resources.text.rerank_arguments(), "--device", device,
    ]
    chosen_dtype = resolve_dtype(dtype, device)
    if chosen_dtype:
        arguments += ["--dtype", chosen_dtype]
    if stage == "listwise":
        arguments += ["--reasoning-output", f"{output}.reasoning.jsonl"]
    arguments += extra or []

    # The Makefile keeps the hub offline for its bundled models; a hub checkpoint needs it online.
    environment = {"HF_HUB_OFFLINE": "0"} if allow_hub_download and is_hub_model(model) else None
    run_module("dear_ir.rerank", arguments, environment)


# Command line -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.pipeline",
        description="Run one step of a collection's pipeline (first stage or a reranking stage) for the make targets.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("collection", help="collection name from dear_ir/collections.yaml (e.g. dl19, covid, noveleval)")
    common.add_argument("--output", required=True, type=Path, help="run file to write")
    common.add_argument("--source", choices=SOURCES, default="auto",
                        help="auto: offline files when the data folder exists, Pyserini otherwise")
    common.add_argument("--indexes", default="indexes", help="folder for locally built Lucene indexes")
    common.add_argument("--on-missing", choices=("stop", "skip"), default="stop",
                        help="stop: exit 2 naming the missing files; skip: log the reason and exit 0 without output")
    steps = parser.add_subparsers(dest="step", required=True)

    first = steps.add_parser("first-stage", parents=[common], help="BM25 top HITS (or the collection's own first stage)")
    first.add_argument("--hits", type=int, default=100, help="hits per query (default: 100)")
    first.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="indexing and search threads")

    second = steps.add_parser("rerank", parents=[common], help="one reranking stage through python -m dear_ir.rerank")
    second.add_argument("--stage", choices=("pointwise", "listwise"), required=True, help="DeAR-P or DeAR-L stage")
    second.add_argument("--model", required=True, help="model alias, hub id or folder (see python -m dear_ir.rerank --help)")
    second.add_argument("--input", required=True, type=Path, help="run to rerank")
    second.add_argument("--device", default="auto", help="torch device; auto: cuda when a GPU is visible, else cpu")
    second.add_argument("--dtype", default="auto",
                        help="weight dtype; auto: bfloat16 on a GPU, as stored on a CPU; empty: as stored")
    second.add_argument("--allow-hub-download", action="store_true",
                        help="set HF_HUB_OFFLINE=0 for a hub model, because the Makefile turns the hub off by default")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Options after "--" go to dear_ir.rerank unchanged.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)
    if extra and args.step != "rerank":
        build_parser().error("options after -- are passed to dear_ir.rerank, so only the rerank step takes them")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        collection = get_collection(args.collection)
        resources = resolve(collection, args.source, indexes=args.indexes)
        if args.step == "first-stage":
            first_stage(resources, args.output, hits=args.hits, threads=args.threads)
        else:
            rerank(resources, args.stage, args.model, args.input, args.output, args.device, args.dtype,
                   extra, args.allow_hub_download)
    except MissingDataError as error:
        if args.on_missing == "skip":
            logger.warning("skipped %s, no output written:\n%s", args.output, error)
            return 0
        logger.error("cannot make %s:\n%s", args.output, error)
        return 2
    except (StepFailedError, OSError, ValueError, KeyError) as error:
        logger.error("%s: %s", args.output, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
