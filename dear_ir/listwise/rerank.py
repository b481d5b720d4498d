"""The DeAR-L listwise reranking loop: sliding windows over each query's head.

For each query, the reranker walks the windows of `sliding_windows` from the
back of the head to the front. Each window's passages go into DeAR's chat
prompt, the model answers with a ranking (or, in first-token mode, one
forward pass ranks them by identifier logits), and the window is reordered in
place before the next window is built. `rerank_batch` sends the next windows
of several queries to the model together, because windows of different
queries do not depend on each other.

Every window leaves a record for the reasoning sidecar, one JSON object a
line (`write_sidecar`):

    qid             query id
    window          0-based index of the window within the query, in processing order
    start, end      the window's half-open rank span, 0-based
    docids          the window's docids in the order the prompt lists them
    prompt_tokens   prompt length in tokens
    new_tokens      tokens generated for this window (0 in first-token mode)
    forward_passes  model forward passes for this window: one per generated token, or 1 in first-token mode
    batch           number of windows sent to the model together with this one
    seconds         wall time of the model call divided by `batch`
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
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from dear_ir.candidates import Candidates
from dear_ir.listwise.first_token import ANSWER_PREFIX, identifier_token_ids, rank_by_logits
from dear_ir.listwise.parse import names_every_passage, parse_answer
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
    seconds: float = 0.0  # wall time of all rerank calls
    # qid -> {"windows", "forward_passes", "seconds"}, where seconds is the query's
    # share of model time: each call's wall time split evenly among its windows.
    per_query: dict[str, dict] = field(default_factory=dict)

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


@dataclass
class _Query:
    """A query in progress: its candidates, windows and current order."""

    candidates: Candidates
    windows: list[tuple[int, int]]
    order: list[int]  # order[rank] = index into candidates.passages
    next_window: int = 0
    forward_passes: int = 0
    seconds: float = 0.0


@dataclass
class _Job:
    """One window of one query, prompted and waiting for the model."""

    query: _Query
    window_index: int
    positions: list[int]  # indexes into candidates.passages, in prompt order
    prompt_ids: list[int]
    record: dict


class ListwiseReranker:
    """DeAR-L: rerank each query's head with a causal LM over sliding windows.

    `model` is a Hugging Face causal LM (or anything with `generate`, a forward
    call returning `.logits`, `device` and `generation_config`) and `tokenizer`
    its tokenizer with a chat template. Decoding is greedy unless `do_sample`
    is set. Then `temperature` and `top_p` apply (DeAR's reference samples at
    0.5 and 0.9), and each model call is seeded from `seed` and the qid and
    window index of its first window. With `batch_size` 1 a query's sampled
    ranking thus does not depend on the other queries, but with larger batches
    it depends on which windows share a call. `batch_size` is the number of
    windows, one per query, sent to the model together.
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
        batch_size: int = 1,
        stop_when_ranked: bool = True,
    ):
        sliding_windows(0, window, step, rank_end)  # validates the window arguments
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")

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
        self.batch_size = batch_size
        self.stop_when_ranked = stop_when_ranked

        self.stats = RerankStats()
        self.records: list[dict] = []
        self._records_written = 0  # records already appended by write_sidecar(append=True)

        if hasattr(model, "eval"):
            model.eval()  # dropout would make greedy decoding nondeterministic
        self._eos_ids = _eos_token_ids(model, tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_ids[0]
        self._max_positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
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
        return self.rerank_batch([candidates])[0]

    def rerank_batch(
        self,
        queries: list[Candidates],
        on_finish: Callable[[Candidates], None] | None = None,
    ) -> list[Candidates]:
        """Rerank several queries, sending the next windows of up to `batch_size` queries together.

        A query's windows depend on each other, but windows of different
        queries do not, so each model call takes the next window of every
        active query, and a finished query makes room for the next one. The
        rankings equal those of `rerank` on each query, except for sampled
        rankings and the small numeric differences that padding causes.
        `on_finish` is called with each reranked query as soon as it is done.
        """
        started = time.perf_counter()
        states = []
        for candidates in queries:
            windows = sliding_windows(len(candidates.passages), self.window, self.step, self.rank_end)
            states.append(_Query(candidates, windows, list(range(len(candidates.passages)))))

        results: list[Candidates | None] = [None] * len(states)

        def finish(index: int) -> None:
            results[index] = self._finish(states[index])
            if on_finish is not None:
                on_finish(results[index])

        waiting = deque(range(len(states)))
        active: list[int] = []
        while waiting or active:
            while waiting and len(active) < self.batch_size:
                index = waiting.popleft()
                if states[index].windows:
                    active.append(index)
                else:
                    finish(index)  # fewer than two passages: nothing to rerank
            if not active:
                break

            jobs = [self._prepare(states[index]) for index in active]
            for job, ranked in zip(jobs, self._run(jobs)):
                self._apply(job, ranked)

            still_active = []
            for index in active:
                if states[index].next_window < len(states[index].windows):
                    still_active.append(index)
                else:
                    finish(index)
            active = still_active

        self.stats.seconds += time.perf_counter() - started
        return results

    def rerank_all(self, queries: Iterable[Candidates], progress: bool = True) -> list[Candidates]:
        """Rerank every query, with a progress bar, and log the run's statistics."""
        queries = list(queries)
        with tqdm(total=len(queries), desc=str(self), unit="query", disable=not progress) as bar:
            reranked = self.rerank_batch(queries, on_finish=lambda _: bar.update(1))
        self.log_stats()
        return reranked

    def log_stats(self) -> None:
        """Log the run's statistics, with a warning when answers needed repair."""
        logger.info("%s: %s", self, self.stats.summary())
        if self.stats.repaired_windows:
            logger.warning(
                "%d of %d windows had answers that needed repair (%s); the sidecar JSONL lists them",
                self.stats.repaired_windows,
                self.stats.windows,
                dict(self.stats.repairs),
            )

    def write_sidecar(self, path: str | os.PathLike, append: bool = False) -> Path:
        """Write the window records as JSONL; see the module docstring for the fields.

        By default the file is replaced atomically by all records so far. With
        `append`, only the records that no earlier `append` call wrote are
        added to the end, so a caller that saves finished queries as it goes
        can save their records alongside.
        """
        path = Path(path)
        if append:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                for record in self.records[self._records_written :]:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._records_written = len(self.records)
        else:
            atomic_write_lines(path, (json.dumps(record, ensure_ascii=False) + "\n" for record in self.records))
        return path

    def _prepare(self, state: _Query) -> _Job:
        candidates = state.candidates
        window_index = state.next_window
        start, end = state.windows[window_index]
        positions = state.order[start:end]
        texts = [candidates.passages[index].text for index in positions]
        prompt = render_prompt(self.tokenizer, build_messages(candidates.query, texts, self.max_words))

        # The prompt must leave room for the answer prefix and at least one new token.
        needed = len(prompt.input_ids) + 1
        if self.first_token:
            needed += len(self._prefix_ids)
        if isinstance(self._max_positions, int) and needed > self._max_positions:
            raise ValueError(
                f"qid {candidates.qid} window {window_index} [{start}, {end}): the prompt has "
                f"{len(prompt.input_ids)} tokens, more than the model's {self._max_positions} positions "
                "allow; lower max_words or the window"
            )

        record = {
            "qid": candidates.qid,
            "window": window_index,
            "start": start,
            "end": end,
            "docids": [candidates.passages[index].docid for index in positions],
            "prompt_tokens": len(prompt.input_ids),
        }
        return _Job(state, window_index, positions, prompt.input_ids, record)

    def _run(self, jobs: list[_Job]) -> list[list[int]]:
        """Send the jobs' prompts to the model together; return each window's ranking (0-based positions)."""
        started = time.perf_counter()
        try:
            if self.first_token:
                rankings = self._run_first_token(jobs)
            else:
                rankings = self._run_generation(jobs)
        except RuntimeError as error:  # CUDA out of memory is a RuntimeError too
            windows = ", ".join(f"qid {job.record['qid']} window {job.window_index}" for job in jobs)
            longest = max(len(job.prompt_ids) for job in jobs)
            error.add_note(
                f"while ranking {windows} (longest prompt {longest} tokens); a smaller batch_size, "
                "window or max_words needs less memory"
            )
            raise

        seconds = (time.perf_counter() - started) / len(jobs)
        for job in jobs:
            job.record["batch"] = len(jobs)
            job.record["seconds"] = seconds
        return rankings

    def _run_first_token(self, jobs: list[_Job]) -> list[list[int]]:
        logits = self._identifier_logits([job.prompt_ids + self._prefix_ids for job in jobs])
        rankings = []
        for job, row in zip(jobs, logits):
            window_logits = row[: len(job.positions)]
            job.record.update(new_tokens=0, forward_passes=1, raw_answer="", reasoning="", repairs={}, logits=window_logits)
            rankings.append(rank_by_logits(window_logits))
        return rankings

    def _run_generation(self, jobs: list[_Job]) -> list[list[int]]:
        outputs = self._generate(
            [job.prompt_ids for job in jobs], [len(job.positions) for job in jobs],
            jobs[0].record["qid"], jobs[0].window_index,
        )
        rankings = []
        for job, new_ids in zip(jobs, outputs):
            # Special tokens stay in the text in case <think> is one; only the stop token goes.
            answer_ids = [token_id for token_id in new_ids if token_id not in self._eos_ids]
            raw_answer = self.tokenizer.decode(answer_ids, skip_special_tokens=False)
            parsed = parse_answer(raw_answer, len(job.positions))
            job.record.update(
                new_tokens=len(new_ids),
                # The prefill pass yields the first token and each later token takes one more pass.
                forward_passes=len(new_ids),
                raw_answer=raw_answer,
                reasoning=parsed.reasoning,
                repairs=parsed.repairs,
            )
            rankings.append(parsed.order)
        return rankings

    def _apply(self, job: _Job, ranked: list[int]) -> None:
        start, end = job.query.windows[job.window_index]
        job.query.order[start:end] = [job.positions[j] for j in ranked]
        job.query.next_window += 1
        job.query.forward_passes += job.record["forward_passes"]
        job.query.seconds += job.record["seconds"]

        job.record["permutation"] = [position + 1 for position in ranked]
        self.records.append(job.record)
        self.stats.windows += 1
        self.stats.forward_passes += job.record["forward_passes"]
        self.stats.prompt_tokens += job.record["prompt_tokens"]
        self.stats.new_tokens += job.record["new_tokens"]
        if job.record["repairs"]:
            self.stats.repaired_windows += 1
            self.stats.repairs.update(job.record["repairs"])

    def _finish(self, state: _Query) -> Candidates:
        passages = state.candidates.passages
        head = state.windows[0][1] if state.windows else 0
        tail_top = passages[head].score if head < len(passages) else 0.0
        scores = [tail_top + (head - rank) for rank in range(head)]
        scores += [passages[index].score for index in state.order[head:]]

        self.stats.queries += 1
        self.stats.per_query[state.candidates.qid] = {
            "windows": len(state.windows),
            "forward_passes": state.forward_passes,
            "seconds": state.seconds,
        }
        return state.candidates.reordered(state.order, strictly_decreasing(scores))

    def _left_padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # Left padding puts every prompt's last token in the last column, where
        # generation continues and the first-token logits are read.
        width = max(len(sequence) for sequence in sequences)
        input_ids = torch.full((len(sequences), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[row, width - len(sequence) :] = 1
        return input_ids.to(self.model.device), attention_mask.to(self.model.device)

    @torch.inference_mode()
    def _generate(
        self, prompts: list[list[int]], counts: list[int], qid: str, window_index: int
    ) -> list[list[int]]:
        input_ids, attention_mask = self._left_padded(prompts)
        max_new_tokens = self.max_new_tokens
        if isinstance(self._max_positions, int) and input_ids.shape[1] + max_new_tokens > self._max_positions:
            max_new_tokens = self._max_positions - input_ids.shape[1]
            logger.warning(
                "qid %s window %d: %d prompt tokens leave room for %d of the %d new tokens requested",
                qid, window_index, input_ids.shape[1], max_new_tokens, self.max_new_tokens,
            )

        options = dict(max_new_tokens=max_new_tokens, do_sample=self.do_sample)
        if self.do_sample:
            torch.manual_seed(_window_seed(self.seed, qid, window_index))
            options.update(temperature=self.temperature, top_p=self.top_p)
        else:
            # Unset the sampling options that an instruct model's generation_config often
            # carries, because greedy decoding ignores them and transformers warns about each.
            options.update(temperature=None, top_p=None, top_k=None)
        # Built even when off, so that its empty `lengths` send every row to the end-of-sequence cut below.
        stop_rule = _StopWhenRanked(self.tokenizer, input_ids.shape[1], counts)
        if self.stop_when_ranked:
            options.update(stopping_criteria=StoppingCriteriaList([stop_rule]))
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            **options,
        )

        new_ids = []
        for row, generated in enumerate(output[:, input_ids.shape[1] :].tolist()):
            if stop_rule.lengths[row] is not None:
                new_ids.append(generated[: stop_rule.lengths[row]])
                continue
            # Keep the end-of-sequence token in the count of passes; what follows it is padding.
            stop = next((position for position, token_id in enumerate(generated) if token_id in self._eos_ids), None)
            new_ids.append(generated if stop is None else generated[: stop + 1])
        return new_ids

    @torch.inference_mode()
    def _identifier_logits(self, sequences: list[list[int]]) -> list[list[float]]:
        input_ids, attention_mask = self._left_padded(sequences)
        # Positions count real tokens only, so a left-padded prompt is read as if unpadded.
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        # logits_to_keep=1 computes the vocabulary projection for the last position only.
        logits = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=1
        ).logits[:, -1]
        return logits[:, self._identifier_ids].float().tolist()


class _StopWhenRanked(StoppingCriteria):
    """A stopping criterion that ends a row once its answer names every passage of its window.

    Parsing drops every identifier after its first mention, so what a model writes
    after naming all passages cannot change the ranking (`names_every_passage`
    gives the one exception); stopping there saves those tokens and the repairs
    that dropping them would count. `lengths[row]` is the number of new tokens
    at the stop, or None for a row that stopped otherwise.
    """

    def __init__(self, tokenizer, prompt_length: int, counts: list[int]):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.counts = counts
        self.lengths: list[int | None] = [None] * len(counts)

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        for row, count in enumerate(self.counts):
            if self.lengths[row] is not None:
                continue
            generated = input_ids[row, self.prompt_length :].tolist()
            # An identifier is complete only when its "]" arrives, so other tokens need no check.
            if "]" not in self.tokenizer.decode(generated[-1:], skip_special_tokens=False):
                continue
            if names_every_passage(self.tokenizer.decode(generated, skip_special_tokens=False), count):
                self.lengths[row] = len(generated)
        stopped = [length is not None for length in self.lengths]
        return torch.tensor(stopped, dtype=torch.bool, device=input_ids.device)


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
