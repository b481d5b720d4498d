"""Batches of teacher groups for pointwise training, encoded as the scorer encodes them.

A student must see at training time exactly the inputs that `dear_ir.pointwise`
builds when it scores, or its scores after loading differ from those it
learned. Both conventions therefore reuse that module's tokenization:

- "dear" (LLaMA-family students): `encode_dear_pairs`, then the compact form of
  the 228-token DeAR input. `dear_logits_compact` computes it by calling the
  backbone directly. Training must call the model's own forward pass instead,
  so that DistributedDataParallel and PEFT see every call, and the batch below
  gives the same logits through it (checked by the tests).
- "standard" (BERT-style students): the tokenizer's pair encoding, the query
  first, the passage truncated to fit, as `CrossEncoderScorer` encodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from dear_ir.dump_teacher import TeacherGroup
from dear_ir.pointwise import (
    DEAR_READOUT_POSITION,
    STANDARD_MAX_LENGTH,
    dear_pad_token_id,
    encode_dear_pairs,
)


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
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def standard_max_length(tokenizer) -> int:
    return min(STANDARD_MAX_LENGTH, tokenizer.model_max_length)


@dataclass
class GroupCollator:
    """Turn a list of `TeacherGroup`s into model inputs and a (groups, group size) logit matrix.

    The model inputs list the pairs group by group, the positive of each group
    first, so that the model's logits reshape to (groups, group size).
    """

    tokenizer: object
    convention: str  # "dear" or "standard"

    def __post_init__(self):
        if self.convention not in ("dear", "standard"):
            raise ValueError(f"unknown convention {self.convention!r}; choose 'dear' or 'standard'")

    def encode(self, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        if self.convention == "dear":
            sequences = encode_dear_pairs(self.tokenizer, pairs)
            return dear_forward_inputs(sequences, dear_pad_token_id(self.tokenizer))
        return dict(self.tokenizer(
            [query for query, _ in pairs],
            [text for _, text in pairs],
            truncation="only_second",
            max_length=standard_max_length(self.tokenizer),
            padding=True,
            return_tensors="pt",
        ))

    def __call__(self, groups: list[TeacherGroup]) -> dict:
        pairs = [(group.query, text) for group in groups for text in group.texts]
        return {
            "model_inputs": self.encode(pairs),
            "teacher_logits": torch.tensor([group.logits for group in groups], dtype=torch.float32),
        }
