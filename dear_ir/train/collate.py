"""Batches of teacher groups for pointwise training, encoded as the scorer encodes them.

A student must see at training time exactly the inputs that `dear_ir.pointwise`
builds when it scores, or its scores after loading differ from those it
learned. Both conventions therefore reuse that module's tokenization:

- "dear" (LLaMA-family students): `encode_dear_pairs`, then the compact form of
  the 228-token DeAR input from `dear_forward_inputs`. `dear_logits_compact`
  feeds those inputs to the backbone directly. Training must call the model's
  own forward pass instead, so that DistributedDataParallel and PEFT see every
  call, and the same inputs give the same logits through it (checked by the tests).
- "standard" (BERT-style students): the tokenizer's pair encoding, the query
  first, the passage truncated to fit, as `CrossEncoderScorer` encodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from dear_ir.dump_teacher import TeacherGroup
from dear_ir.pointwise import (
    STANDARD_MAX_LENGTH,
    additive_attention_mask,  # noqa: F401 (imported from here by training code and tests)
    dear_forward_inputs,
    dear_pad_token_id,
    encode_dear_pairs,
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
