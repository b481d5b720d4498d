"""Single-pass listwise ranking from the logits of the first identifier token (FIRST-style).

Instead of generating ``[2] > [1] > ...`` token by token, the reranker extends
the prompt by the opening bracket of the answer and runs one forward pass. The
window is then ranked by the next-token logits of the identifiers "1" to "N",
as the FIRST reranker does. The prefix skips DeAR-L's reasoning, which is where
the time goes. DeAR-L was fine-tuned to reason first, not on this read-out, so
its first-token ranking approximates the generated one.

Multi-digit identifiers: the read-out needs every identifier 1..N to be one
distinct token after "[". Llama-3's pre-tokenizer groups up to three digits
into one token ("[12]" is "[", "12", "]"), so windows of up to 999 passages
work there. A tokenizer that splits digits, as SmolLM2's does ("[12]" is "[",
"1", "2", "]"), gives "1", "10" and "12" the same first token.
`identifier_token_ids` rejects such windows instead of scoring the shared
first digit, because the logit of "1" cannot tell passage 1 from passage 12.
"""

from __future__ import annotations

from typing import Sequence

# The answer starts with the first identifier's bracket: "[2] > [1] > ...".
ANSWER_PREFIX = "["


def identifier_token_ids(tokenizer, count: int, prefix: str = ANSWER_PREFIX) -> list[int]:
    """Return the token id of each identifier 1..`count` as it follows `prefix`.

    Raises ValueError when an identifier is not exactly one token after the
    prefix, or when two identifiers share a token.
    """
    prefix_ids = _encode(tokenizer, prefix)
    token_ids = []
    for number in range(1, count + 1):
        ids = _encode(tokenizer, f"{prefix}{number}")
        if ids[: len(prefix_ids)] != prefix_ids or len(ids) != len(prefix_ids) + 1:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            raise ValueError(
                f"first-token ranking needs each identifier to be one token after {prefix!r}, but "
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} writes identifier {number} as "
                f"{pieces}; use a window of at most {number - 1} passages, or generated rankings"
            )
        token_ids.append(ids[-1])

    if len(set(token_ids)) != len(token_ids):
        raise ValueError(f"identifiers 1..{count} do not map to distinct tokens: {token_ids}")
    return token_ids


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def rank_by_logits(logits: Sequence[float]) -> list[int]:
    """Return 0-based positions sorted by decreasing logit; ties keep the input order.

    >>> rank_by_logits([0.5, 2.0, 0.5, -1.0])
    [1, 0, 2, 3]
    """
    return sorted(range(len(logits)), key=lambda position: -logits[position])
