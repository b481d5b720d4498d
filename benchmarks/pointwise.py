"""Benchmark DeAR-P scoring speed: compact read-out, fixed 228-token padding, and CrossEncoder.predict.

    python benchmarks/pointwise.py --queries 10 --append benchmarks/RESULTS.md

Everything is measured in one process on the same pairs (the DL19 BM25
top-100 with text from the shared data), so the printed ratios compare like
with like even on a busy machine:

- pairs per second of `padding="compact"`, `padding="fixed"` and
  sentence-transformers' `CrossEncoder.predict` (speed only: it pools at the
  last real token, so its scores differ);
- achieved GFLOP/s, counted as 2 x non-embedding parameters x tokens run
  through the model, against bf16 and fp32 matrix-multiply peaks measured by
  `torch.matmul` in the same run;
- whether compact and fixed give identical rankings in fp32;
- seconds per query against candidates per query (20, 50, 100, 200) from a
  SciFact BM25 top-200 run, with the fit of a straight line.

`--random-shape llama-3.1-8b` replaces the model by a randomly initialised one
of Llama-3.1-8B's shape (weights do not change speed) fed with random token ids
of the DL19 pairs' lengths, for a GPU without the model files.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dear_ir.candidates import build_candidates  # noqa: E402
from dear_ir.corpus import open_source  # noqa: E402
from dear_ir.models import load_sequence_classifier, save_plain_copy  # noqa: E402
from dear_ir.pointwise import DEAR_PADDED_LENGTH, CrossEncoderScorer, encode_dear_pairs  # noqa: E402
from dear_ir.runs import read_run  # noqa: E402
from dear_ir.topics import load_topics  # noqa: E402

logger = logging.getLogger("benchmark")

# Llama-3.1-8B's published configuration (config.json on the Hugging Face hub).
LLAMA_3_1_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0,
)


def data_dir() -> Path:
    return Path(os.environ.get("DEAR_IR_DATA", REPO.parent / "shared" / "data"))


def dl19_pairs(queries: int) -> list[list[tuple[str, str]]]:
    """Return the DL19 BM25 top-100 as (query, passage) pairs, grouped by query."""
    bm25 = data_dir() / "rankllm-retrieve-results" / "BM25"
    run = read_run(bm25 / "trec_results_dl19.txt")
    topics = load_topics(data_dir() / "dl19-passage" / "topics.dl19-passage.txt")
    candidates = build_candidates(run, topics, open_source(corpus=bm25 / "retrieve_results_dl19.json"))
    return [[(c.query, p.text) for p in c.passages] for c in candidates[:queries]]


def matmul_peak(dtype: torch.dtype, device: str, size: int = 2048, seconds: float = 3.0) -> float:
    """Return the GFLOP/s of repeated square matrix products, the machine's practical peak."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.matmul(a, b)
        count += 1
    synchronize(device)
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def non_embedding_parameters(model) -> int:
    embeddings = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embeddings


def timed(function, device: str):
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - started


class TokenScorer(CrossEncoderScorer):
    """A scorer over ready token ids, for the random-shape model that has no tokenizer."""

    def __init__(self, *args, sequences_by_pair=None, **kwargs):
        self.sequences_by_pair = sequences_by_pair
        super().__init__(*args, **kwargs)

    def encode(self, pairs):
        return [self.sequences_by_pair[pair] for pair in pairs]


def measure(args) -> list[str]:
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    grouped = dl19_pairs(args.queries)
    pairs = [pair for group in grouped for pair in group]
    lines = []

    if args.random_shape:
        from transformers import LlamaConfig, LlamaForSequenceClassification

        config = LlamaConfig(**LLAMA_3_1_8B, num_labels=1, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                             attn_implementation="sdpa")
        with torch.device(args.device):
            model = LlamaForSequenceClassification(config).to(dtype).eval()
        rng = random.Random(0)
        # Lengths as SmolLM2's tokenizer gives for DL19 pairs (mean about 100 tokens);
        # NOTE: Llama-3's tokenizer gives somewhat fewer tokens for the same text.
        sequences = {pair: [1] + [rng.randrange(3, 128000) for _ in range(rng.randint(60, 160))] for pair in pairs}
        make_scorer = lambda padding: TokenScorer(  # noqa: E731
            model, _FakeTokenizer(), name="random-llama-3.1-8b", padding=padding, device=args.device,
            max_batch_tokens=args.max_batch_tokens, batch_size=args.batch_size, show_progress=False,
            sequences_by_pair=sequences)
    else:
        model, tokenizer = load_sequence_classifier(args.model, dtype=args.dtype, attn_implementation="sdpa")
        make_scorer = lambda padding: CrossEncoderScorer(  # noqa: E731
            model, tokenizer, name=args.model, padding=padding, device=args.device,
            max_batch_tokens=args.max_batch_tokens, batch_size=args.batch_size, show_progress=False)

    parameters = non_embedding_parameters(model)
    peak_bf16 = matmul_peak(torch.bfloat16, args.device)
    peak_fp32 = matmul_peak(torch.float32, args.device)
    lines.append(f"- matmul peak (2048x2048): bf16 {peak_bf16:.1f} GFLOP/s, fp32 {peak_fp32:.1f} GFLOP/s")
    lines.append(f"- model: {args.random_shape or args.model}, {args.dtype}, {parameters / 1e6:.1f} M non-embedding "
                 f"parameters; {len(pairs)} pairs from {len(grouped)} DL19 queries")

    compact_scorer = make_scorer("compact")
    real_tokens = sum(len(s) for s in compact_scorer.encode(pairs))
    results = {}
    for padding, tokens in (("compact", real_tokens + len(pairs)), ("fixed", DEAR_PADDED_LENGTH * len(pairs))):
        scorer = compact_scorer if padding == "compact" else make_scorer("fixed")
        make_scorer("compact").score(pairs[: args.batch_size])  # warm-up
        _, seconds = timed(lambda: scorer.score(pairs), args.device)
        gflops = 2 * parameters * tokens / seconds / 1e9
        results[padding] = len(pairs) / seconds
        lines.append(f"- {padding}: {results[padding]:.2f} pairs/s, {seconds / len(grouped):.3f} s/query, "
                     f"{tokens} tokens, {gflops:.1f} GFLOP/s = {gflops / (peak_bf16 if dtype == torch.bfloat16 else peak_fp32):.0%} of the {args.dtype} matmul peak")

    if not args.random_shape and not args.skip_cross_encoder:
        results["CrossEncoder"] = cross_encoder_speed(model, tokenizer, pairs, args)
        lines.append(f"- sentence-transformers CrossEncoder.predict: {results['CrossEncoder']:.2f} pairs/s")

    lines.append(f"- compact / fixed: {results['compact'] / results['fixed']:.2f}x")
    if "CrossEncoder" in results:
        lines.append(f"- compact / CrossEncoder: {results['compact'] / results['CrossEncoder']:.2f}x")

    if not args.random_shape:
        lines.append(fp32_rankings_identical(args, grouped[: args.fp32_queries]))
        if args.scifact_run:
            lines.extend(candidates_scaling(compact_scorer, args))
    return lines


class _FakeTokenizer:
    name_or_path = "random"
    bos_token_id = 1
    eos_token_id = 2
    pad_token_id = 2


def cross_encoder_speed(model, tokenizer, pairs, args) -> float:
    """Return pairs/s of sentence-transformers' CrossEncoder on a plain copy of the same model."""
    from sentence_transformers import CrossEncoder

    with tempfile.TemporaryDirectory() as folder:
        save_plain_copy(model, tokenizer, folder)
        cross_encoder = CrossEncoder(folder, num_labels=1, device=args.device,
                                     model_kwargs={"dtype": model.dtype, "attn_implementation": "sdpa"})
        cross_encoder.tokenizer.pad_token = cross_encoder.tokenizer.eos_token
        cross_encoder.model.config.pad_token_id = cross_encoder.tokenizer.pad_token_id
        cross_encoder.max_length = DEAR_PADDED_LENGTH
        cross_encoder.predict(pairs[: args.batch_size], batch_size=args.batch_size)  # warm-up
        _, seconds = timed(lambda: cross_encoder.predict(pairs, batch_size=args.batch_size,
                                                         show_progress_bar=False), args.device)
    return len(pairs) / seconds


def fp32_rankings_identical(args, grouped) -> str:
    model, tokenizer = load_sequence_classifier(args.model, dtype="float32", attn_implementation="sdpa")
    compact = CrossEncoderScorer(model, tokenizer, name=args.model, padding="compact", show_progress=False)
    fixed = CrossEncoderScorer(model, tokenizer, name=args.model, padding="fixed", show_progress=False)
    identical, worst = 0, 0.0
    for group in grouped:
        a, b = compact.score(group), fixed.score(group)
        identical += list(np.argsort(-a, kind="stable")) == list(np.argsort(-b, kind="stable"))
        worst = max(worst, float(np.max(np.abs(a - b))))
    return (f"- fp32 rankings identical (compact vs fixed): {identical} of {len(grouped)} queries; "
            f"max |score difference| {worst:.2e}")


def candidates_scaling(scorer, args) -> list[str]:
    """Return lines on seconds per query for growing candidate lists, and a linear fit."""
    run = read_run(args.scifact_run)
    scifact = data_dir() / "beir-scifact"
    topics = load_topics(scifact / "topics.beir-v1.0.0-scifact.test.tsv.gz")
    qids = [qid for qid in run if len(run[qid]) >= 200][: args.scaling_queries]
    source = open_source(corpus=scifact / "corpus.jsonl")
    counts, seconds = [20, 50, 100, 200], []
    for count in counts:
        subset = type(run)({qid: run[qid][:count] for qid in qids})
        pairs = [(c.query, p.text) for c in build_candidates(subset, topics, source) for p in c.passages]
        _, elapsed = timed(lambda: scorer.score(pairs), args.device)
        seconds.append(elapsed / len(qids))
    slope, intercept = np.polyfit(counts, seconds, 1)
    predicted = np.polyval([slope, intercept], counts)
    r_squared = 1 - np.sum((np.array(seconds) - predicted) ** 2) / np.sum((np.array(seconds) - np.mean(seconds)) ** 2)
    table = ", ".join(f"{c}: {s:.2f} s" for c, s in zip(counts, seconds))
    return [f"- SciFact seconds per query by candidates ({len(qids)} queries): {table}; "
            f"linear fit {slope * 1000:.1f} ms/candidate + {intercept:.2f} s, R^2 = {r_squared:.4f}"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, {gpu}; "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="DeAR-P model (any dear_ir --model value)")
    parser.add_argument("--random-shape", choices=["llama-3.1-8b"], default=None,
                        help="use a randomly initialised model of this shape instead of --model")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--queries", type=int, default=43, help="DL19 queries to score (100 pairs each)")
    parser.add_argument("--fp32-queries", type=int, default=3, help="queries for the fp32 ranking comparison")
    parser.add_argument("--batch-size", type=int, default=128, help="pairs per forward pass at most")
    parser.add_argument("--max-batch-tokens", type=int, default=8192, help="padded tokens per forward pass at most")
    parser.add_argument("--scifact-run", default=None, help="SciFact BM25 top-200 run for the scaling measurement")
    parser.add_argument("--scaling-queries", type=int, default=5, help="SciFact queries for the scaling measurement")
    parser.add_argument("--skip-cross-encoder", action="store_true", help="leave out the CrossEncoder comparison")
    parser.add_argument("--append", default=None, help="Markdown file to append the results to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    lines = [f"### {time.strftime('%Y-%m-%d')}: `{' '.join(sys.argv[1:]) or 'defaults'}`", "",
             f"- machine: {machine()}", *measure(args), ""]
    print("\n".join(lines))
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
