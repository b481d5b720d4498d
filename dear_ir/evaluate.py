"""Evaluation of runs: trec_eval metrics through pytrec_eval, and QA Top-k accuracy.

Usage::

    python -m dear_ir.evaluate --qrels dl19-passage runs/bm25.dl19.txt runs/dear.dl19.txt
    python -m dear_ir.evaluate --qrels qrels.txt --metrics ndcg_cut_10 recall_1000 --relevance-level 2 RUN
    python -m dear_ir.evaluate --answers nq-test.qa.tsv --index wikipedia-dpr RUN

Metric names are trec_eval's (``ndcg_cut_10``, ``map``, ``recall_100``,
``P_10``, ``recip_rank``). The conventions are those of ``trec_eval -c``:
every judged query counts, and a judged query absent from the run scores 0 on
every metric. ``--relevance-level N`` binarises labels at ``rel >= N`` for
MAP, recall and the other binary metrics, while nDCG keeps the graded labels
(``-l 2`` is the TREC Deep Learning passage convention).

Hits with tied scores are evaluated in the run's order (``--ties run``, the
default), so a reranker's output is scored as it ranked. trec_eval instead
sorts tied hits by docid, and ``--ties trec_eval`` does the same to reproduce
published numbers: on the DL21 BM25 run of rank_llm, nDCG@5 is 0.4485 in run
order and 0.4494 as trec_eval computes it.

Top-k accuracy is the share of questions with at least one passage among the
top k that contains an answer, matched with Pyserini's DPR evaluation code
(the DrQA tokenizer, lower-cased token sequences).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import Iterable, Mapping

import pytrec_eval

from dear_ir.runs import Run, read_run

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg_cut_1", "ndcg_cut_5", "ndcg_cut_10", "map", "recall_100")
DEFAULT_TOP_K = (1, 5, 20, 100)

# Short names that papers use, mapped to the trec_eval metric family.
_ALIASES = {"ndcg": "ndcg_cut", "recall": "recall", "r": "recall", "map": "map_cut", "p": "P"}


def canonical_metric(name: str) -> str:
    """Return the trec_eval name of a metric, accepting ``nDCG@10`` style aliases.

    >>> canonical_metric("nDCG@10"), canonical_metric("R@100"), canonical_metric("map")
    ('ndcg_cut_10', 'recall_100', 'map')
    """
    match = re.fullmatch(r"(ndcg|recall|r|map|p|mrr)@(\d+)", name.strip(), re.IGNORECASE)
    if match:
        family, cutoff = match.group(1).lower(), match.group(2)
        if family == "mrr":
            raise ValueError(
                f"metric {name!r}: trec_eval's recip_rank has no cutoff; truncate the run to "
                "k hits per query (dear_ir.runs.read_run(path, max_hits=k)) and use recip_rank"
            )
        return f"{_ALIASES[family]}_{cutoff}"
    _measure_spec(name)  # raises on unknown names
    return name


def _measure_spec(metric: str) -> str:
    """Return the pytrec_eval measure for a trec_eval metric name: ``ndcg_cut_10`` -> ``ndcg_cut.10``."""
    if metric in pytrec_eval.supported_measures:
        return metric
    family, _, cutoff = metric.rpartition("_")
    if family in pytrec_eval.supported_measures and cutoff.isdigit():
        return f"{family}.{cutoff}"
    raise ValueError(
        f"unknown metric {metric!r}; use trec_eval names such as ndcg_cut_10, map, recall_100, "
        f"P_10, recip_rank (families: {', '.join(sorted(pytrec_eval.supported_measures))})"
    )


TIE_RULES = ("run", "trec_eval")


def evaluate_per_query(
    run: Run,
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Iterable[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
    ties: str = "run",
) -> dict[str, dict[str, float]]:
    """Return ``{qid: {metric: value}}`` for every judged qid.

    A judged qid absent from the run gets 0 on every metric, as ``trec_eval -c``
    counts it. Qids of the run without judgments are left out, as trec_eval does.
    `ties` is "run" to keep tied hits in the run's order, or "trec_eval" to
    sort them by docid as trec_eval does.
    """
    metrics = [canonical_metric(metric) for metric in metrics]
    if not qrels:
        raise ValueError("the qrels are empty; pass the qrels that belong to the run's topics")
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, not {ties!r}")

    evaluator = pytrec_eval.RelevanceEvaluator(
        {qid: dict(judged) for qid, judged in qrels.items()},
        {_measure_spec(metric) for metric in metrics},
        relevance_level=relevance_level,
    )
    scored = _rank_scores(run) if ties == "run" else _original_scores(run)
    judged_run = {qid: hits for qid, hits in scored.items() if qid in qrels}
    unjudged = len(run) - len(judged_run)
    if unjudged:
        logger.info("%s: %d of %d queries have no judgments and are not evaluated", run.name, unjudged, len(run))
    missing = [qid for qid in qrels if qid not in judged_run]
    if missing:
        logger.warning(
            "%s: %d of %d judged queries are not in the run and score 0, e.g. qid %s",
            run.name, len(missing), len(qrels), missing[0],
        )

    results = evaluator.evaluate(judged_run)
    per_query = {}
    for qid in qrels:
        values = results.get(qid, {})
        per_query[qid] = {metric: float(values.get(metric, 0.0)) for metric in metrics}
    return per_query


def _rank_scores(run: Run) -> dict[str, dict[str, float]]:
    """Return ``{qid: {docid: score}}`` with scores n, n-1, ..., 1 in the run's rank order.

    trec_eval and pytrec_eval sort by score read as a 32-bit float and break
    ties by docid, so scores that differ only beyond float32 precision (as
    `Run.to_pytrec` produces for tied hits) would be reordered. Whole numbers
    below 2**24 are exact in float32, and the metrics depend on the order alone.
    """
    rank_scores = {}
    for qid, docid_scores in run.to_pytrec().items():
        # Dicts keep insertion order, so this is the run's rank order.
        count = len(docid_scores)
        rank_scores[qid] = {docid: float(count - index) for index, docid in enumerate(docid_scores)}
    return rank_scores


def _original_scores(run: Run) -> dict[str, dict[str, float]]:
    """Return ``{qid: {docid: score}}`` with the run's own scores, for trec_eval's tie rule."""
    scores: dict[str, dict[str, float]] = {}
    for qid, hits in run.items():
        for hit in hits:
            scores.setdefault(qid, {}).setdefault(hit.docid, hit.score)
    return scores


def evaluate_run(
    run: Run,
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Iterable[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
    ties: str = "run",
) -> dict[str, float]:
    """Return ``{metric: mean over all judged queries}`` with trec_eval ``-c`` conventions."""
    metrics = [canonical_metric(metric) for metric in metrics]
    per_query = evaluate_per_query(run, qrels, metrics, relevance_level, ties)
    return {
        metric: sum(values[metric] for values in per_query.values()) / len(per_query)
        for metric in metrics
    }


# Open-domain QA -----------------------------------------------------------------------------


def answer_text(source, docid: str) -> str | None:
    """Return the part of a passage that answers are matched in, or None when the docid is unknown.

    Pyserini's DPR evaluation matches answers in the passage text, not the
    title. A source with a ``document`` method returns the two separately. A
    Wikipedia DPR index stores ``"title\\ntext"`` as one string, so for a
    document without a separate title the first line is dropped.
    """
    if hasattr(source, "document"):
        document = source.document(docid)
        if document is None:
            return None
        if document.title:
            return document.text
        contents = document.text
    else:
        contents = source.text(docid)
        if contents is None:
            return None
    return contents.split("\n", 1)[1] if "\n" in contents else contents


def evaluate_answers(
    run: Run,
    answers: Mapping[str, list[str]],
    source,
    top_k: Iterable[int] = DEFAULT_TOP_K,
    regex: bool = False,
) -> dict[str, float]:
    """Return ``{"top_k": accuracy}``: the share of questions with an answer in the top k passages.

    Every question of `answers` counts, and one absent from the run scores 0.
    `regex` treats each answer as a regular expression, as for CuratedTREC.
    A docid of the run that `source` lacks raises KeyError.
    """
    from pyserini.eval.evaluate_dpr_retrieval import SimpleTokenizer, has_answers

    top_k = sorted(set(top_k))
    tokenizer = SimpleTokenizer()
    hits_at = {k: 0 for k in top_k}
    missing = 0
    for qid, question_answers in answers.items():
        hits = run.get(qid)
        if hits is None:
            missing += 1
            continue
        first_rank = None
        for rank, hit in enumerate(hits[: top_k[-1]], start=1):
            text = answer_text(source, hit.docid)
            if text is None:
                raise KeyError(f"docid {hit.docid!r} (qid {qid}) not found in {source.name}")
            if has_answers(text, question_answers, tokenizer, regex):
                first_rank = rank
                break
        for k in top_k:
            if first_rank is not None and first_rank <= k:
                hits_at[k] += 1

    if missing:
        logger.warning("%s: %d of %d questions are not in the run and count as misses", run.name, missing, len(answers))
    return {f"top_{k}": hits_at[k] / len(answers) for k in top_k}


# Output -------------------------------------------------------------------------------------


def markdown_table(rows: Mapping[str, Mapping[str, float]], first_column: str = "run") -> str:
    """Return a Markdown table with one row per key of `rows` and one column per metric."""
    metrics = list(next(iter(rows.values())).keys()) if rows else []
    lines = [
        "| " + " | ".join([first_column, *metrics]) + " |",
        "|" + "|".join(["---", *("---:" for _ in metrics)]) + "|",
    ]
    for name, values in rows.items():
        lines.append("| " + " | ".join([name, *(f"{values[m]:.4f}" for m in metrics)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.evaluate",
        description="Evaluate TREC runs with trec_eval metrics (pytrec_eval), or QA runs by Top-k accuracy.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="TREC run files")
    judged = parser.add_mutually_exclusive_group(required=True)
    judged.add_argument("--qrels", help="qrels file or Pyserini qrels name (e.g. dl19-passage)")
    judged.add_argument(
        "--answers",
        help="QA topics with answer lists: a DPR QA file, JSONL with 'answers', or a Pyserini name (dpr-nq-test)",
    )
    parser.add_argument(
        "--metrics", nargs="+", default=None, metavar="METRIC",
        help=f"trec_eval metric names or nDCG@k-style aliases (default: {' '.join(DEFAULT_METRICS)}); "
        f"with --answers, cutoffs k for Top-k accuracy (default: {' '.join(map(str, DEFAULT_TOP_K))})",
    )
    parser.add_argument(
        "--relevance-level", type=int, default=1,
        help="lowest label counted relevant by MAP, recall and other binary metrics (default 1; "
        "2 for TREC DL passage); nDCG always uses graded labels",
    )
    parser.add_argument(
        "--ties", choices=TIE_RULES, default="run",
        help="order of hits with tied scores: the run's order (default), or by docid as trec_eval sorts them",
    )
    parser.add_argument("--per-query", action="store_true", help="also print each query's values")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown", help="output format")
    parser.add_argument("--index", help="with --answers: Lucene index folder or Pyserini prebuilt index of the passages")
    parser.add_argument("--corpus", help="with --answers: corpus file of the passages")
    parser.add_argument("--regex", action="store_true", help="with --answers: answers are regular expressions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.qrels:
            means, per_query = _evaluate_ranking(args)
        else:
            if args.per_query:
                parser.error("--per-query is available with --qrels only")
            means, per_query = _evaluate_qa(args), {}
    except (OSError, ValueError, KeyError) as error:
        logger.error("%s", error)
        return 1

    if args.format == "json":
        if args.per_query:
            output = {run: {"mean": means[run], "per_query": per_query[run]} for run in means}
        else:
            output = means
        print(json.dumps(output, indent=2))
    else:
        print(markdown_table(means))
        for run, rows in per_query.items():
            print(f"\n{run}\n")
            print(markdown_table(rows, first_column="qid"))
    return 0


def _evaluate_ranking(args) -> tuple[dict, dict]:
    from dear_ir.topics import load_qrels

    qrels = load_qrels(args.qrels)
    metrics = [canonical_metric(metric) for metric in (args.metrics or DEFAULT_METRICS)]
    means, per_query = {}, {}
    for path in args.runs:
        values = evaluate_per_query(read_run(path), qrels, metrics, args.relevance_level, args.ties)
        means[path] = {m: sum(v[m] for v in values.values()) / len(values) for m in metrics}
        if args.per_query:
            per_query[path] = values
    return means, per_query


def _evaluate_qa(args) -> dict:
    from dear_ir.corpus import open_source
    from dear_ir.topics import load_answers

    try:
        top_k = [int(k.removeprefix("top_")) for k in (args.metrics or DEFAULT_TOP_K)]
    except ValueError:
        raise ValueError(f"with --answers, --metrics takes cutoffs such as 1 5 20 100, not {args.metrics}") from None
    answers = load_answers(args.answers)
    source = open_source(index=args.index, corpus=args.corpus)
    return {path: evaluate_answers(read_run(path), answers, source, top_k, args.regex) for path in args.runs}


if __name__ == "__main__":
    sys.exit(main())
