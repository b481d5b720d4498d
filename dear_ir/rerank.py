"""`python -m dear_ir.rerank`: rerank a TREC run with DeAR-P, DeAR-L or both.

    python -m dear_ir.rerank --stage pointwise --model minilm \\
        --input runs/bm25.trec --output runs/dear-p.trec --topics topics.tsv --corpus corpus.jsonl

Stages:
  pointwise  DeAR-P: score every (query, passage) pair of the head (--top-k)
  listwise   DeAR-L: rerank the head (--rank-end) with sliding windows of a chat LLM
  dear       pointwise over all candidates, then listwise over the head

Queries are processed in chunks and each finished query is appended to
`OUTPUT.partial.jsonl`, so an interrupted run resumes where it stopped. The run
file itself is written atomically once every query is done, with
`OUTPUT.meta.json` beside it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dear_ir.candidates import Candidates, build_candidates, to_run
from dear_ir.runs import PartialRun, Run, read_run, write_metadata, write_run

logger = logging.getLogger(__name__)

STAGES = ("pointwise", "listwise", "dear")

# Settings that change how fast a run goes or what it logs, but not its scores:
# a partial run may resume with other values of these.
RESUMABLE_CHANGES = {
    "no_progress", "log_level", "output", "chunk_queries", "batch_size", "max_batch_tokens",
    "listwise_batch_size", "reasoning_output", "device", "stop_when_ranked",
}
POINTWISE_SETTINGS = {"scorer", "padding", "top_k", "pointwise_model"}
LISTWISE_SETTINGS = {
    "window", "step", "rank_end", "max_words", "max_new_tokens", "sample", "temperature", "top_p", "seed",
    "first_token", "listwise_model",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it means something and the help text does not give it already."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.rerank",
        description="Rerank a TREC run with DeAR's pointwise (DeAR-P) and listwise (DeAR-L) stages.",
        formatter_class=HelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", required=True, help="TREC run to rerank")
    io.add_argument("--output", required=True, help="TREC run to write (atomically)")
    io.add_argument("--stage", choices=STAGES, default="pointwise", help="which stage(s) to run")
    io.add_argument("--topics", help="topics: a Pyserini name, TSV (.gz), TREC, JSONL or candidates JSON; "
                                     "defaults to --corpus when that is a candidates JSON")
    source = io.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", help="Lucene index folder or Pyserini prebuilt index name for passage text")
    source.add_argument("--corpus", help="corpus file for passage text: JSONL, BEIR JSONL, TSV or candidates JSON")
    io.add_argument("--skip-missing", action="store_true",
                    help="drop hits whose docid is not in the corpus instead of stopping (counted in the log)")
    io.add_argument("--hits", type=positive_int, default=None,
                    help="read at most this many hits per query from --input (default: all)")
    io.add_argument("--raw-text", action="store_true",
                    help="keep passage text as published; by default mojibake (UTF-8 read as Latin-1) is repaired")
    io.add_argument("--tag", default=None, help="run tag in the last column (default: the output name)")

    model = parser.add_argument_group("models and hardware")
    model.add_argument("--model", help="model of the chosen stage: hub id, folder, PEFT adapter, .gguf file "
                                       "or alias (minilm, smollm2, dear-p-8b, dear-l-8b, ...)")
    model.add_argument("--pointwise-model", help="DeAR-P model for --stage dear")
    model.add_argument("--listwise-model", help="DeAR-L model for --stage dear")
    model.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    model.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                       help="weight dtype (default: as stored)")
    model.add_argument("--attn-implementation", default=None, choices=["eager", "sdpa"],
                       help="attention kernel (default: the transformers default)")

    pointwise = parser.add_argument_group("pointwise stage (DeAR-P)")
    pointwise.add_argument("--scorer", choices=["cross-encoder", "bi-encoder"], default=None,
                           help="scoring architecture (default: bi-encoder for sentence-transformers folders)")
    pointwise.add_argument("--padding", choices=["compact", "fixed"], default="compact",
                           help="DeAR convention read-out: compact (exact, fewer tokens) or fixed 228-token padding")
    pointwise.add_argument("--top-k", type=positive_int, default=None,
                           help="rerank the first K passages of each query; the rest keep their input order below "
                                "(default: all)")
    pointwise.add_argument("--batch-size", type=positive_int, default=64, help="maximum pairs per forward pass")
    pointwise.add_argument("--max-batch-tokens", type=positive_int, default=16384,
                           help="maximum padded tokens per forward pass")

    listwise = parser.add_argument_group("listwise stage (DeAR-L)")
    listwise.add_argument("--window", type=positive_int, default=20, help="passages per window")
    listwise.add_argument("--step", type=positive_int, default=10, help="passages the window moves up each time")
    listwise.add_argument("--rank-end", type=positive_int, default=None,
                          help="rerank the first N passages (default: 100 for listwise, 30 for dear)")
    listwise.add_argument("--max-words", type=int, default=300, help="words kept of each passage in the prompt")
    listwise.add_argument("--max-new-tokens", type=int, default=1024, help="tokens generated per window at most")
    listwise.add_argument("--sample", action="store_true",
                          help="sample instead of greedy decoding (DeAR's reference samples)")
    listwise.add_argument("--temperature", type=float, default=0.5, help="sampling temperature with --sample")
    listwise.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass with --sample")
    listwise.add_argument("--seed", type=int, default=0, help="sampling seed")
    listwise.add_argument("--first-token", action="store_true",
                          help="rank each window from the first generated token's logits (one forward pass)")
    listwise.add_argument("--stop-when-ranked", action=argparse.BooleanOptionalAction, default=True,
                          help="end generation once the answer names every passage of the window; "
                               "the ranking is the same, because later identifiers would be dropped as repeats")
    listwise.add_argument("--listwise-batch-size", type=positive_int, default=1,
                          help="queries whose next windows go through the model together")
    listwise.add_argument("--reasoning-output", default=None,
                          help="JSONL sidecar with each window's answer and reasoning")

    run = parser.add_argument_group("running")
    run.add_argument("--chunk-queries", type=positive_int, default=32,
                     help="queries scored together before their results are saved for resuming")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--log-level", default="INFO", help="logging level")
    return parser


def load_candidates(args) -> list[Candidates]:
    """Read the input run, its topics and the passage texts into candidates."""
    from dear_ir.corpus import open_source
    from dear_ir.topics import load_topics

    run = read_run(args.input, max_hits=args.hits)
    topics_spec = args.topics or args.corpus
    if topics_spec is None:
        raise SystemExit("error: --topics is required when passage text comes from --index")
    topics = load_topics(topics_spec)
    source = open_source(index=args.index, corpus=args.corpus, repair=not args.raw_text)
    candidates = build_candidates(run, topics, source, skip_missing=args.skip_missing)

    empty = [query.qid for query in candidates if not query.passages]
    if empty:
        logger.warning("%d queries have no candidates and are left out of the output, e.g. %s", len(empty), empty[:5])
    logger.info("read %d queries, %d passages from %s", len(candidates), run.num_hits(), args.input)
    return [query for query in candidates if query.passages]


def load_pointwise(args, model: str):
    from dear_ir.pointwise import load_scorer

    return load_scorer(
        model, scorer=args.scorer, padding=args.padding, dtype=args.dtype, device=args.device,
        batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens,
        attn_implementation=args.attn_implementation, show_progress=not args.no_progress,
    )


def load_listwise(args, model: str, rank_end: int):
    from dear_ir.listwise.rerank import ListwiseReranker
    from dear_ir.models import load_causal_lm

    causal_lm, tokenizer = load_causal_lm(model, dtype=args.dtype, attn_implementation=args.attn_implementation)
    causal_lm.to(args.device)
    return ListwiseReranker(
        causal_lm, tokenizer, window=args.window, step=args.step, rank_end=rank_end,
        max_words=args.max_words, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, first_token=args.first_token,
        batch_size=args.listwise_batch_size, stop_when_ranked=args.stop_when_ranked,
    )


def stage_models(args) -> tuple[str | None, str | None]:
    """Return the (pointwise, listwise) models that the chosen stage needs."""
    if args.stage == "pointwise":
        models = (args.model or args.pointwise_model, None)
    elif args.stage == "listwise":
        models = (None, args.model or args.listwise_model)
    else:
        models = (args.pointwise_model, args.listwise_model)
    needed = {"pointwise": [0], "listwise": [1], "dear": [0, 1]}[args.stage]
    flags = ["--model or --pointwise-model", "--model or --listwise-model"]
    if args.stage == "dear":
        flags = ["--pointwise-model", "--listwise-model"]
    for position in needed:
        if not models[position]:
            raise SystemExit(f"error: --stage {args.stage} needs {flags[position]}")
    return models


def rerank_candidates(args, candidates: list[Candidates]) -> tuple[Run, PartialRun]:
    """Run the chosen stages chunk by chunk, saving each finished query to the partial run.

    The caller removes the partial run once the run file is written.
    """
    from dear_ir.pointwise import rerank_pointwise

    pointwise_model, listwise_model = stage_models(args)
    rank_end = args.rank_end or (30 if args.stage == "dear" else 100)
    partial = PartialRun(args.output, run_settings(args))
    todo = [query for query in candidates if query.qid not in partial]

    # Models load before the first query is saved, so a model that fails to
    # load leaves no partial file to trip over on the corrected rerun.
    scorer = load_pointwise(args, pointwise_model) if pointwise_model and todo else None
    listwise = load_listwise(args, listwise_model, rank_end) if listwise_model and todo else None
    if args.reasoning_output and not partial.finished:
        Path(args.reasoning_output).unlink(missing_ok=True)  # a fresh run starts a fresh sidecar

    try:
        for first in range(0, len(todo), args.chunk_queries):
            chunk = todo[first : first + args.chunk_queries]
            if scorer is not None:
                chunk = rerank_pointwise(chunk, scorer, top_k=args.top_k)
            if listwise is not None:
                chunk = listwise.rerank_batch(chunk)
                if args.reasoning_output:
                    # Appended per chunk, like the partial run, so a resumed run keeps
                    # the reasoning of the queries it does not redo.
                    listwise.write_sidecar(args.reasoning_output, append=True)
            for query in chunk:
                partial.add(query.qid, to_run([query], "chunk")[query.qid])
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"{len(partial.finished)} of {len(candidates)} queries are saved in {partial.path}; "
                                "rerun the same command to resume") from None

    if listwise is not None:
        listwise.log_stats()

    run = Run(name=Path(args.output).name)
    for query in candidates:
        run[query.qid] = partial.finished[query.qid]
    return run, partial


def run_settings(args) -> dict:
    """Return the settings that decide a run's scores, recorded to check that a resume matches."""
    settings = {key: value for key, value in vars(args).items() if key not in RESUMABLE_CHANGES}
    if args.stage == "pointwise":
        settings = {key: value for key, value in settings.items() if key not in LISTWISE_SETTINGS}
    if args.stage == "listwise":
        settings = {key: value for key, value in settings.items() if key not in POINTWISE_SETTINGS}
    for key in ("input", "topics", "index", "corpus"):
        if settings.get(key) and Path(settings[key]).exists():
            settings[key] = str(Path(settings[key]).resolve())
    return settings


def check_output(args) -> None:
    """Reject an output path that could never be written, before any work is done."""
    output, source = Path(args.output), Path(args.input)
    if output.is_dir():
        raise SystemExit(f"error: --output {output} is a folder; give a file path such as {output / 'run.trec'}")
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise SystemExit(f"error: --output {output} is the --input run; write the reranked run to another file")


def main(argv: list[str] | None = None) -> int:
    from dear_ir.java import JavaNotFoundError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stage_models(args)
    check_output(args)

    # Input problems end the command with one line naming the file, line, qid or
    # docid; nothing is written to --output. --log-level DEBUG shows the traceback.
    try:
        candidates = load_candidates(args)
        run, partial = rerank_candidates(args, candidates)
    except (OSError, ValueError, KeyError, JavaNotFoundError) as error:
        logger.error("%s", error, exc_info=logger.isEnabledFor(logging.DEBUG))
        return 1
    except KeyboardInterrupt as interrupt:
        logger.error("interrupted: %s", interrupt)
        return 130

    write_run(run, args.output, tag=args.tag or Path(args.output).stem)
    write_metadata(args.output, vars(args))
    partial.remove()
    logger.info("wrote %s: %d queries, %d hits", args.output, len(run), run.num_hits())
    return 0


if __name__ == "__main__":
    sys.exit(main())
