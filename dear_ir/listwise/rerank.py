"""The DeAR-L listwise reranking loop: sliding windows over each query's head.

For each query, `ListwiseReranker.rerank` walks the windows of
`sliding_windows` from the back of the head to the front. Each window's
passages go into DeAR's chat prompt, the model answers with a ranking (or, in
first-token mode, one forward pass ranks them by identifier logits), and the
window is reordered in place before the next window is built.

Every window leaves a record for the reasoning sidecar, one JSON object a
line (`write_sidecar`):

    qid             query id
    window          0-based index of the window within the query, in processing order
    start, end      the window's half-open rank span, 0-based
    docids          the window's docids in the order the prompt lists them
    prompt_tokens   prompt length in tokens
    new_tokens      tokens generated (0 in first-token mode)
    forward_passes  model forward passes: one per generated token, or 1 in first-token mode
    seconds         wall time of the window
    raw_answer      the decoded output, reasoning included
    reasoning       the text inside <think>, empty when there is none
    permutation     1-based prompt identifiers, best first, after repairs
    repairs         {repair kind: count}, see `dear_ir.listwise.parse`
    logits          identifier logits in prompt order (first-token mode only)
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from tqdm import tqdm

from dear_ir.candidates import Candidates
from dear_ir.listwise.first_token import ANSWER_PREFIX, identifier_token_ids, rank_by_logits
from dear_ir.listwise.parse import parse_answer
from dear_ir.listwise.prompt import DEFAULT_MAX_WORDS, build_messages, render_prompt
from dear_ir.listwise.windows import sliding_windows
from dear_ir.runs import atomic_write_lines, strictly_decreasing

logger = logging.getLogger(__name__)


@dataclass
class RerankStats:
    """Counts over all queries a reranker has processed."""

    queries: int = 0
    windows: int = 0
    repaired_windows: int = 0  # windows whose answer needed at least one repair
    repairs: Counter = field(default_factory=Counter)  # repair kind -> count over all windows
    forward_passes: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    per_query: dict[str, dict] = field(default_factory=dict)  # qid -> windows, forward_passes, seconds

    def as_dict(self) -> dict:
        return {
            "queries": self.queries,
            "windows": self.windows,
            "repaired_windows": self.repaired_windows,
            "repairs": dict(self.repairs),
            "forward_passes": self.forward_passes,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "seconds": self.seconds,
            "per_query": self.per_query,
        }

    def summary(self) -> str:
        per_query = self.seconds / self.queries if self.queries else 0.0
        repairs = ", ".join(f"{kind} {count}" for kind, count in sorted(self.repairs.items())) or "none"
        return (
            f"{self.queries} queries, {self.windows} windows, {self.forward_passes} forward passes, "
            f"{per_query:.2f} s/query; {self.repaired_windows} windows repaired ({repairs})"
        )


class ListwiseReranker:
    """DeAR-L: rerank each query's head with a causal LM over sliding windows.

    `model` is a Hugging Face causal LM (or anything with `generate`, a forward
    call returning `.logits`, `device` and `generation_config`) and `tokenizer`
    its tokenizer with a chat template. Decoding is greedy unless `do_sample`
    is set; then `temperature` and `top_p` apply (DeAR's reference samples at
    0.5 and 0.9), and each window is seeded from `seed`, the qid and the
    window index, so a query's ranking does not depend on which queries ran
    before it.
    """

    def __init__(
        self,
        model,
        tokenizer,
        window: int = 20,
        step: int = 10,
        rank_end: int | None = 100,
        max_words: int = DEFAULT_MAX_WORDS,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 0.5,
        top_p: float = 0.9,
        seed: int = 0,
        first_token: bool = False,
    ):
        sliding_windows(0, window, step, rank_end)  # validates the window arguments
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")

        self.model = model
        self.tokenizer = tokenizer
        self.window = window
        self.step = step
        self.rank_end = rank_end
        self.max_words = max_words
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.first_token = first_token

        self.stats = RerankStats()
        self.records: list[dict] = []

        if hasattr(model, "eval"):
            model.eval()  # dropout would make greedy decoding nondeterministic
        self._eos_ids = _eos_token_ids(model, tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_ids[0]
        if first_token:
            # Checked once for the largest window, so a tokenizer that splits
            # identifiers fails before the first query.
            self._identifier_ids = identifier_token_ids(tokenizer, window)
            self._prefix_ids = list(tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"])

    def __str__(self) -> str:
        if self.first_token:
            mode = "first-token"
        elif self.do_sample:
            mode = f"sampled, temperature {self.temperature}, top-p {self.top_p}, seed {self.seed}"
        else:
            mode = "greedy"
        return f"DeAR-L(window={self.window}, step={self.step}, rank_end={self.rank_end}, {mode})"

    def rerank(self, candidates: Candidates) -> Candidates:
        """Return the candidates with the head reranked and strictly decreasing scores.

        The reranked head gets new scores above the highest score of the tail,
        which keeps its order and its original scores.
        """
        started = time.perf_counter()
        passages = candidates.passages
        order = list(range(len(passages)))  # order[rank] = index into passages
        windows = sliding_windows(len(passages), self.window, self.step, self.rank_end)
        passes_before = self.stats.forward_passes

        for window_index, (start, end) in enumerate(windows):
            positions = order[start:end]
            ranked = self._rank_window(candidates, window_index, start, end, positions)
            order[start:end] = [positions[j] for j in ranked]

        head = windows[0][1] if windows else 0
        tail_top = passages[head].score if head < len(passages) else 0.0
        scores = [tail_top + (head - rank) for rank in range(head)]
        scores += [passages[index].score for index in order[head:]]
        reranked = candidates.reordered(order, strictly_decreasing(scores))

        seconds = time.perf_counter() - started
        self.stats.queries += 1
        self.stats.seconds += seconds
        self.stats.per_query[candidates.qid] = {
            "windows": len(windows),
            "forward_passes": self.stats.forward_passes - passes_before,
            "seconds": seconds,
        }
        return reranked

    def rerank_all(self, queries: Iterable[Candidates], progress: bool = True) -> list[Candidates]:
        """Rerank every query, with a progress bar, and log the run's statistics."""
        queries = list(queries)
        reranked = [
            self.rerank(candidates)
            for candidates in tqdm(queries, desc=str(self), unit="query", disable=not progress)
        ]
        logger.info("%s: %s", self, self.stats.summary())
        if self.stats.repaired_windows:
            logger.warning(
                "%d of %d windows had answers that needed repair (%s); the sidecar JSONL lists them",
                self.stats.repaired_windows,
                self.stats.windows,
                dict(self.stats.repairs),
            )
        return reranked

    def write_sidecar(self, path: str | os.PathLike) -> Path:
        """Write the window records as JSONL, atomically; see the module docstring for the fields."""
        path = Path(path)
        atomic_write_lines(path, (json.dumps(record, ensure_ascii=False) + "\n" for record in self.records))
        return path

    def _rank_window(self, candidates: Candidates, window_index: int, start: int, end: int, positions: list[int]) -> list[int]:
        """Rank one window and record it; return 0-based window positions, best first."""
        started = time.perf_counter()
        texts = [candidates.passages[index].text for index in positions]
        prompt = render_prompt(self.tokenizer, build_messages(candidates.query, texts, self.max_words))
        self._check_length(candidates.qid, window_index, start, end, len(prompt.input_ids))

        record = {
            "qid": candidates.qid,
            "window": window_index,
            "start": start,
            "end": end,
            "docids": [candidates.passages[index].docid for index in positions],
            "prompt_tokens": len(prompt.input_ids),
        }
        try:
            if self.first_token:
                logits = self._identifier_logits(prompt.input_ids, len(texts))
                ranked = rank_by_logits(logits)
                record.update(new_tokens=0, forward_passes=1, raw_answer="", reasoning="", repairs={}, logits=logits)
            else:
                new_ids = self._generate(prompt.input_ids, candidates.qid, window_index)
                # Special tokens stay in the text in case <think> is one; only the stop token goes.
                answer_ids = [token_id for token_id in new_ids if token_id not in self._eos_ids]
                raw_answer = self.tokenizer.decode(answer_ids, skip_special_tokens=False)
                parsed = parse_answer(raw_answer, len(texts))
                ranked = parsed.order
                record.update(
                    new_tokens=len(new_ids),
                    # The prefill pass yields the first token and each later token takes one more pass.
                    forward_passes=len(new_ids),
                    raw_answer=raw_answer,
                    reasoning=parsed.reasoning,
                    repairs=parsed.repairs,
                )
        except RuntimeError as error:  # CUDA out of memory is a RuntimeError too
            error.add_note(
                f"while ranking qid {candidates.qid} window {window_index} [{start}, {end}) with "
                f"{len(prompt.input_ids)} prompt tokens; a smaller window or max_words shortens the prompt"
            )
            raise

        record["permutation"] = [position + 1 for position in ranked]
        record["seconds"] = time.perf_counter() - started
        self.records.append(record)

        self.stats.windows += 1
        self.stats.forward_passes += record["forward_passes"]
        self.stats.prompt_tokens += record["prompt_tokens"]
        self.stats.new_tokens += record["new_tokens"]
        if record["repairs"]:
            self.stats.repaired_windows += 1
            self.stats.repairs.update(record["repairs"])
        return ranked

    def _check_length(self, qid: str, window_index: int, start: int, end: int, prompt_tokens: int) -> None:
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        needed = prompt_tokens + (1 if self.first_token else self.max_new_tokens)
        if isinstance(limit, int) and needed > limit:
            raise ValueError(
                f"qid {qid} window {window_index} [{start}, {end}): {prompt_tokens} prompt tokens plus "
                f"{needed - prompt_tokens} new tokens exceed the model's {limit} positions; "
                "lower max_words, the window or max_new_tokens"
            )

    @torch.inference_mode()
    def _generate(self, prompt_ids: list[int], qid: str, window_index: int) -> list[int]:
        input_ids = torch.tensor([prompt_ids], device=self.model.device)
        options = dict(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample)
        if self.do_sample:
            torch.manual_seed(_window_seed(self.seed, qid, window_index))
            options.update(temperature=self.temperature, top_p=self.top_p)
        else:
            # Unset the sampling options that an instruct model's generation_config often
            # carries, because greedy decoding ignores them and transformers warns about each.
            options.update(temperature=None, top_p=None, top_k=None)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            **options,
        )

        new_ids = output[0, len(prompt_ids):].tolist()
        # Keep the end-of-sequence token in the count of passes, not in the text.
        for position, token_id in enumerate(new_ids):
            if token_id in self._eos_ids:
                return new_ids[: position + 1]
        return new_ids

    @torch.inference_mode()
    def _identifier_logits(self, prompt_ids: list[int], count: int) -> list[float]:
        input_ids = torch.tensor([prompt_ids + self._prefix_ids], device=self.model.device)
        # logits_to_keep=1 computes the vocabulary projection for the last position only.
        logits = self.model(input_ids=input_ids, logits_to_keep=1).logits[0, -1]
        return logits[self._identifier_ids[:count]].float().tolist()


def _eos_token_ids(model, tokenizer) -> list[int]:
    """Collect the end-of-sequence ids of the model's generation config and of the tokenizer.

    A chat model stops at its end-of-turn token (Llama-3's <|eot_id|>), which
    the generation config of the instruct model lists but the base model's does not.
    """
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token_id in [*(configured if isinstance(configured, list) else [configured]), tokenizer.eos_token_id]:
        if token_id is not None and token_id not in ids:
            ids.append(int(token_id))
    if not ids:
        raise ValueError("neither the model's generation config nor the tokenizer names an end-of-sequence token")
    return ids


def _window_seed(seed: int, qid: str, window_index: int) -> int:
    return zlib.crc32(f"{seed}:{qid}:{window_index}".encode())
