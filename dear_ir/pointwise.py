"""The pointwise stage: score (query, passage) pairs with a cross-encoder or a bi-encoder.

The DeAR input convention
-------------------------
DeAR-P checkpoints are LLaMA sequence classifiers trained on inputs built as

    <bos>query: {query}<bos>document: {title} {text}

with the query text cut to 32 tokens and the document text to 193 tokens
(BOS tokens not counted), so a pair has at most 1 + 32 + 1 + 193 = 227 real
tokens. Training and the reference inference right-pad every pair with EOS to a
fixed 228 tokens while `config.pad_token_id` is 0, and Hugging Face pools at the
last token whose id differs from `pad_token_id`. The logit is therefore read at
position 227, which is always a pad slot. Pooling at the last real token, or
padding dynamically, reads a different hidden state and gives different scores.

That pad slot's hidden state depends only on the real tokens, the pad token's
embedding and its position id 227, because its attention mask hides every pad
key, itself included. `padding="compact"` (the default) therefore runs the real
tokens plus one pad token at position id 227 that attends to the real tokens
and not to itself: the same logit as `padding="fixed"` for far fewer tokens.
`padding="fixed"` is the reference form and stays available.

The convention applies to LLaMA-family classifiers: the DeAR checkpoints, and
SmolLM2 scored as DeAR-P. Other classifiers (BERT, MiniLM) use their
tokenizer's standard pair encoding and their own pooling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEAR_QUERY_TOKENS = 32
DEAR_DOCUMENT_TOKENS = 193
DEAR_PADDED_LENGTH = 228
DEAR_READOUT_POSITION = DEAR_PADDED_LENGTH - 1
# Maximum input tokens of the standard convention, because BERT-style encoders stop at 512.
STANDARD_MAX_LENGTH = 512
# Bi-encoders read at most this many tokens per text (all-MiniLM-L6-v2 was trained so).
BI_ENCODER_MAX_LENGTH = 256


class PointwiseScorer(Protocol):
    name: str
    settings: dict

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return one relevance score per (query, passage) pair, in input order."""


# ---------------------------------------------------------------------------
# Encoding


def dear_query_text(query: str) -> str:
    return f"query: {query}"


def dear_document_text(text: str, title: str = "") -> str:
    # With no title this leaves two spaces after the colon, exactly as the
    # reference builds MS MARCO inputs ("document: " + title + " " + text).
    # NOTE: corpora with titles reach this function as one joined text, so their
    # inputs carry that double space too, where the reference has one.
    return f"document: {title} {text}"


def encode_dear_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Return the token ids of each pair under the DeAR convention, unpadded.

    Texts are tokenized in batches by the fast tokenizer; each distinct query is
    tokenized once.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no BOS token, which the DeAR input "
            "convention puts before the query and the document; use --scorer with another convention"
        )

    queries = sorted({query for query, _ in pairs})
    query_ids = dict(zip(queries, _tokenize(tokenizer, [dear_query_text(q) for q in queries], DEAR_QUERY_TOKENS)))
    document_ids = _tokenize(tokenizer, [dear_document_text(text) for _, text in pairs], DEAR_DOCUMENT_TOKENS)
    return [[bos] + query_ids[query] + [bos] + ids for (query, _), ids in zip(pairs, document_ids)]


def encode_dear_pair(tokenizer, query: str, document: str) -> list[int]:
    return encode_dear_pairs(tokenizer, [(query, document)])[0]


def _tokenize(tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    # split_special_tokens keeps a literal "<|endoftext|>" in a passage from
    # becoming a control token.
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=max_tokens,
        split_special_tokens=True,
    )
    return encoded["input_ids"]


def dear_pad_token_id(tokenizer) -> int:
    """Return the id DeAR pads with: the tokenizer's pad token, else EOS, as in the reference."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token")
    return pad


def apply_dear_convention(model, tokenizer) -> None:
    """Make Hugging Face's own pooling read position 227 of a fixed-padded DeAR input.

    DeAR checkpoints keep `config.pad_token_id = 0` while padding with EOS, so
    that pooling (last token whose id is not `pad_token_id`) lands on the final
    pad slot. Setting the same on other LLaMA models (SmolLM2's config sets 2,
    its EOS) lets the Trainer's forward pass and this module's read-out agree.
    """
    from dear_ir.models import base_model

    pad = dear_pad_token_id(tokenizer)
    if pad == 0:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} pads with id 0, the id DeAR reserves for "
            "config.pad_token_id; the read-out position would be ambiguous"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    for config in {id(c): c for c in (model.config, base_model(model).config)}.values():
        config.pad_token_id = 0


# ---------------------------------------------------------------------------
# Batching


def token_budget_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group indexes into batches whose padded size stays within a token budget.

    Indexes are sorted by length, longest first, so each batch pads to its
    first member and a batch contains `max_batch_tokens // length` pairs, at most
    `max_batch_size`. Callers restore the input order from the indexes.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * width > max_batch_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


# ---------------------------------------------------------------------------
# Cross-encoders


@dataclass
class CrossEncoderScorer:
    """Scores pairs with a sequence classifier under the DeAR or the standard convention."""

    model: object
    tokenizer: object
    name: str
    convention: str = "dear"  # "dear" or "standard"
    padding: str = "compact"  # "compact" or "fixed", DeAR convention only
    max_batch_tokens: int = 16384
    batch_size: int = 64
    device: str = "cpu"
    show_progress: bool = True

    def __post_init__(self):
        if self.convention not in ("dear", "standard"):
            raise ValueError(f"unknown convention {self.convention!r}; choose 'dear' or 'standard'")
        if self.padding not in ("compact", "fixed"):
            raise ValueError(f"unknown padding {self.padding!r}; choose 'compact' or 'fixed'")
        if self.convention == "dear":
            apply_dear_convention(self.model, self.tokenizer)
        self.model.to(self.device)
        self.model.eval()

    @property
    def settings(self) -> dict:
        return {
            "scorer": "cross-encoder",
            "model": self.name,
            "convention": self.convention,
            "padding": self.padding if self.convention == "dear" else "dynamic",
            "max_batch_tokens": self.max_batch_tokens,
            "batch_size": self.batch_size,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "device": self.device,
        }

    def __str__(self) -> str:
        return f"CrossEncoder({self.name}, {self.convention})"

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        if self.convention == "dear":
            return encode_dear_pairs(self.tokenizer, pairs)
        encoded = self.tokenizer(
            [query for query, _ in pairs],
            [text for _, text in pairs],
            truncation="only_second",
            max_length=min(STANDARD_MAX_LENGTH, self.tokenizer.model_max_length),
        )
        self._token_type_ids = encoded.get("token_type_ids")
        return encoded["input_ids"]

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        if not pairs:
            return np.zeros(0, dtype=np.float32)

        sequences = self.encode(pairs)
        # The compact form adds one read-out slot; the fixed form is always 228 wide.
        if self.convention == "dear" and self.padding == "fixed":
            widths = [DEAR_PADDED_LENGTH] * len(sequences)
        else:
            widths = [len(s) + (self.convention == "dear") for s in sequences]
        batches = token_budget_batches(widths, self.max_batch_tokens, self.batch_size)

        scores = np.zeros(len(sequences), dtype=np.float32)
        started = time.perf_counter()
        with torch.inference_mode(), tqdm(total=len(sequences), unit="passage", desc=f"scoring {self.name}",
                                          disable=not self.show_progress) as progress:
            for batch in batches:
                logits = self._forward([sequences[i] for i in batch], batch)
                scores[batch] = logits.float().cpu().numpy()
                progress.update(len(batch))

        elapsed = time.perf_counter() - started
        tokens = sum(widths)
        logger.info(
            "%s scored %d pairs (%d tokens) in %.1f s: %.1f pairs/s",
            self, len(sequences), tokens, elapsed, len(sequences) / max(elapsed, 1e-9),
        )
        return scores

    def _forward(self, sequences: list[list[int]], indexes: list[int]):
        if self.convention == "standard":
            return self._forward_standard(sequences, indexes)
        if self.padding == "fixed":
            return dear_logits_fixed(self.model, sequences, dear_pad_token_id(self.tokenizer), self.device)
        return dear_logits_compact(self.model, sequences, dear_pad_token_id(self.tokenizer), self.device)

    def _forward_standard(self, sequences, indexes):
        features = [{"input_ids": s} for s in sequences]
        if getattr(self, "_token_type_ids", None) is not None:
            for feature, index in zip(features, indexes):
                feature["token_type_ids"] = self._token_type_ids[index]
        batch = self.tokenizer.pad(features, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        logits = self.model(**batch).logits
        return logits[:, 0] if logits.dim() == 2 else logits


def _backbone_and_head(model):
    """Split a LLaMA-style sequence classifier into its decoder and its score head."""
    from dear_ir.models import base_model

    base = base_model(model)
    backbone = getattr(base, base.base_model_prefix)
    head = getattr(base, "score", None)
    if head is None:
        raise ValueError(f"{type(base).__name__} has no `score` head; the DeAR convention needs a LLaMA-style classifier")
    return backbone, head


def dear_logits_fixed(model, sequences: list[list[int]], pad_token_id: int, device="cpu"):
    """Return the logit at position 227 of each pair right-padded to 228 tokens (the reference form)."""
    import torch

    batch_size = len(sequences)
    input_ids = torch.full((batch_size, DEAR_PADDED_LENGTH), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, DEAR_PADDED_LENGTH), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if len(sequence) > DEAR_READOUT_POSITION:
            raise ValueError(f"pair of {len(sequence)} tokens exceeds the DeAR limit of {DEAR_READOUT_POSITION}")
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        attention_mask[row, : len(sequence)] = 1

    backbone, head = _backbone_and_head(model)
    hidden = backbone(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
    return head(hidden[:, DEAR_READOUT_POSITION])[:, 0]


def dear_forward_inputs(sequences: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Return forward-pass inputs that read each pair's DeAR logit at position id 227.

    Row i has its L real tokens (position ids 0..L-1, causal attention), then
    the pad token at position id 227, which attends to the L real tokens and not
    to itself, as the fixed 228-token form's attention mask makes it. Shorter
    rows are filled with token id 0, each filler attending only to itself so
    that no softmax row is empty. Hugging Face pools at the last token whose id
    differs from `config.pad_token_id`, which DeAR keeps at 0, so the pooled
    token is the read-out slot and never a filler.

    `attention_mask` is boolean, (batch, 1, width, width), True where attention
    is allowed. `additive_attention_mask` turns it into the form the model takes.
    """
    import torch

    if pad_token_id == 0:
        raise ValueError("the DeAR pad token must not be id 0, which marks filler slots")
    batch_size = len(sequences)
    lengths = torch.tensor([len(sequence) for sequence in sequences])
    if int(lengths.max()) > DEAR_READOUT_POSITION:
        raise ValueError(f"a pair of {int(lengths.max())} tokens exceeds the DeAR limit of {DEAR_READOUT_POSITION}")
    width = int(lengths.max()) + 1

    input_ids = torch.zeros((batch_size, width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(list(sequence), dtype=torch.long)
        input_ids[row, len(sequence)] = pad_token_id

    slots = torch.arange(width)[None, :]
    length = lengths[:, None]
    position_ids = torch.where(slots < length, slots, torch.zeros_like(slots))
    position_ids = torch.where(slots == length, torch.full_like(position_ids, DEAR_READOUT_POSITION), position_ids)

    query, key = slots[:, :, None], slots[:, None, :]
    length = lengths[:, None, None]
    among_real = (key <= query) & (query < length)
    readout_row = (query == length) & (key < length)
    filler_row = (query > length) & (key == query)
    allowed = (among_real | readout_row | filler_row)[:, None]
    return {"input_ids": input_ids, "attention_mask": allowed, "position_ids": position_ids}


def additive_attention_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return 0 where attention is allowed and the dtype's minimum elsewhere.

    Eager attention adds the mask to the scores, so a boolean mask would be
    wrong there. transformers passes a 4D mask to the attention unchanged.
    """
    import torch

    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def dear_logits_compact(model, sequences: list[list[int]], pad_token_id: int, device="cpu"):
    """Return the same logits as `dear_logits_fixed` from the real tokens plus one read-out slot.

    The inputs come from `dear_forward_inputs`; the score head runs on the
    read-out slot of each row only.
    """
    import torch

    backbone, head = _backbone_and_head(model)
    dtype = next(backbone.parameters()).dtype
    inputs = dear_forward_inputs(sequences, pad_token_id)
    mask = additive_attention_mask(inputs["attention_mask"], dtype)

    hidden = backbone(
        input_ids=inputs["input_ids"].to(device),
        attention_mask=mask.to(device),
        position_ids=inputs["position_ids"].to(device),
    ).last_hidden_state
    lengths = torch.tensor([len(s) for s in sequences], device=hidden.device)
    readout_hidden = hidden[torch.arange(len(sequences), device=hidden.device), lengths]
    return head(readout_hidden)[:, 0]


# ---------------------------------------------------------------------------
# Bi-encoders


@dataclass
class BiEncoderScorer:
    """Scores pairs by the cosine of mean-pooled sentence-transformers embeddings."""

    model: object  # sentence_transformers.SentenceTransformer
    name: str
    batch_size: int = 64
    scale: float = 1.0
    show_progress: bool = True
    cache_size: int = 500_000  # passage embeddings kept between calls; about 0.8 GB at 384 dimensions

    def __post_init__(self):
        self._cache: dict[str, np.ndarray] = {}

    @property
    def settings(self) -> dict:
        return {
            "scorer": "bi-encoder",
            "model": self.name,
            "similarity": "cosine",
            "max_seq_length": self.model.max_seq_length,
            "scale": self.scale,
        }

    def __str__(self) -> str:
        return f"BiEncoder({self.name})"

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        from tqdm.auto import tqdm

        if not pairs:
            return np.zeros(0, dtype=np.float32)
        started = time.perf_counter()

        # Each distinct text is embedded once per scorer: a passage retrieved for
        # several queries, or in several chunks of a run, costs one forward pass.
        queries = sorted({query for query, _ in pairs})
        texts = sorted({text for _, text in pairs}, key=len)
        query_embeddings = self._encode(queries)
        new_texts = [text for text in texts if text not in self._cache]
        with tqdm(total=len(new_texts), unit="passage", desc=f"embedding {self.name}",
                  disable=not self.show_progress) as progress:
            for first in range(0, len(new_texts), self.batch_size):
                batch = new_texts[first : first + self.batch_size]
                self._cache.update(zip(batch, self._encode(batch)))
                progress.update(len(batch))
        text_embeddings = np.stack([self._cache[text] for text in texts])
        if len(self._cache) > self.cache_size:
            self._cache.clear()

        query_row = {query: i for i, query in enumerate(queries)}
        text_row = {text: i for i, text in enumerate(texts)}
        query_matrix = query_embeddings[[query_row[query] for query, _ in pairs]]
        text_matrix = text_embeddings[[text_row[text] for _, text in pairs]]
        cosines = np.sum(query_matrix * text_matrix, axis=1)

        elapsed = time.perf_counter() - started
        logger.info("%s scored %d pairs (%d passages embedded) in %.1f s: %.1f pairs/s",
                    self, len(pairs), len(new_texts), elapsed, len(pairs) / max(elapsed, 1e-9))
        return (cosines * self.scale).astype(np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


# ---------------------------------------------------------------------------
# Loading


def load_scorer(
    model: str,
    scorer: str | None = None,
    padding: str = "compact",
    dtype: str | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    max_batch_tokens: int = 16384,
    attn_implementation: str | None = None,
    show_progress: bool = True,
) -> PointwiseScorer:
    """Load a pointwise scorer from a --model value.

    `scorer` is "cross-encoder", "bi-encoder" or None to decide from the
    folder: sentence-transformers layout (a modules.json) means bi-encoder.
    """
    from dear_ir.models import load_sequence_classifier, resolve_model, uses_dear_convention

    source = resolve_model(model)
    if scorer is None:
        scorer = "bi-encoder" if source.is_sentence_transformer else "cross-encoder"

    if scorer == "bi-encoder":
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(source.path, device=device)
        encoder.max_seq_length = BI_ENCODER_MAX_LENGTH
        return BiEncoderScorer(encoder, name=model, batch_size=batch_size, show_progress=show_progress)

    if scorer != "cross-encoder":
        raise ValueError(f"unknown scorer {scorer!r}; choose 'cross-encoder' or 'bi-encoder'")

    classifier, tokenizer = load_sequence_classifier(source, dtype=dtype, attn_implementation=attn_implementation)
    convention = "dear" if uses_dear_convention(classifier, source.metadata) else "standard"
    return CrossEncoderScorer(
        classifier, tokenizer, name=model, convention=convention, padding=padding,
        max_batch_tokens=max_batch_tokens, batch_size=batch_size, device=device, show_progress=show_progress,
    )


def rerank_pointwise(candidates, scorer: PointwiseScorer, top_k: int | None = None):
    """Rescore the first `top_k` passages of every query; passages below keep their input order.

    All pairs of all queries go to the scorer at once so that batches span
    queries. Returns new `Candidates` with scores that decrease down the list.
    """
    heads = [query.passages[:top_k] if top_k else query.passages for query in candidates]
    pairs = [(query.query, passage.text) for query, head in zip(candidates, heads) for passage in head]
    scores = scorer.score(pairs)

    reranked = []
    offset = 0
    for query, head in zip(candidates, heads):
        head_scores = [float(s) for s in scores[offset : offset + len(head)]]
        offset += len(head)
        order = sorted(range(len(head)), key=lambda i: -head_scores[i])
        tail = query.passages[len(head):]
        # The tail keeps its input order below the lowest head score.
        floor = min(head_scores, default=0.0)
        tail_scores = [floor - 1.0 - i for i in range(len(tail))]
        ordered = query.reordered(order + list(range(len(head), len(query.passages))),
                                  [head_scores[i] for i in order] + tail_scores)
        reranked.append(ordered)
    return reranked
