"""Distillation fidelity: how closely a student's ranking follows its teacher's, per query.

    python -m dear_ir.train.fidelity runs/dl19.student.trec --teacher runs/dl19.teacher.trec

For each qid in both runs, Kendall's tau-b is computed between the two scores
of the docids that both runs rank. Tau-b corrects for ties in either ranking,
and a query whose scores are all tied in one run has no tau and is left out.
The mean over queries is the fidelity. nDCG measures whether the student ranks
well, and tau measures whether it learned the teacher's order, which is what
the KL term and the soft RankNet targets ask of it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from dear_ir.runs import Run, read_run

logger = logging.getLogger(__name__)


def kendall_tau_per_query(student: Run, teacher: Run, depth: int | None = None) -> dict[str, float]:
    """Return Kendall's tau-b between the two runs' scores for each shared qid.

    With `depth`, only the first `depth` hits of each run count. Runs that
    reranked only the top k of the same first stage should be compared at
    depth k, because both keep the tail in its input order, which would
    inflate tau. A query with fewer than two shared docids, or whose scores are
    all tied in one run, has no defined tau and is left out with one warning.
    """
    from scipy.stats import kendalltau

    taus: dict[str, float] = {}
    undefined = []
    for qid in student.keys() & teacher.keys():
        teacher_scores = {hit.docid: hit.score for hit in teacher[qid][:depth]}
        shared = [hit for hit in student[qid][:depth] if hit.docid in teacher_scores]
        if len(shared) < 2:
            undefined.append(qid)
            continue
        tau = kendalltau([hit.score for hit in shared], [teacher_scores[hit.docid] for hit in shared]).statistic
        if math.isnan(tau):
            undefined.append(qid)
            continue
        taus[qid] = float(tau)

    if undefined:
        logger.warning(
            "Kendall tau undefined for %d qids (fewer than 2 shared docids, or all scores tied), e.g. %s",
            len(undefined), sorted(undefined)[:5],
        )
    return taus


def mean_kendall_tau(student: Run, teacher: Run, depth: int | None = None) -> float:
    """Return the mean per-query Kendall tau-b; raise ValueError when no qid has one."""
    taus = kendall_tau_per_query(student, teacher, depth)
    if not taus:
        raise ValueError(
            f"runs {student.name!r} and {teacher.name!r} share no query with two or more docids; "
            "check that both rank the same topics"
        )
    return sum(taus.values()) / len(taus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.train.fidelity",
        description="Mean per-query Kendall tau-b between student runs and their teacher's run.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="student TREC runs")
    parser.add_argument("--teacher", required=True, help="the teacher's TREC run over the same candidates")
    parser.add_argument("--depth", type=int, default=None, help="compare the first DEPTH hits of each run only (default: all)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown", help="output format")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    teacher = read_run(args.teacher)
    results = {}
    for path in args.runs:
        taus = kendall_tau_per_query(read_run(path), teacher, args.depth)
        results[path] = {
            "kendall_tau": sum(taus.values()) / len(taus) if taus else float("nan"),
            "queries": len(taus),
        }

    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        print(f"| run | Kendall tau with {args.teacher} | queries |\n|---|---:|---:|")
        for path, row in results.items():
            print(f"| {path} | {row['kendall_tau']:.4f} | {row['queries']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
