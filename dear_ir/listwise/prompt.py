"""DeAR-L's listwise prompt, the single source of the prompt for training and inference.

The released listwise model was fine-tuned on this exact conversation, so its
wording follows DeAR's reference code (DataScienceUIBK/DeAR-Reranking,
`listwise_rerank/prompts.py`) character for character, in RankGPT's multi-turn
form:

1. a system turn, then a user turn announcing N passages and the query, which
   the assistant acknowledges;
2. one user turn ``[i] {passage}`` per passage, identifiers from 1, each
   acknowledged by the assistant;
3. a final user turn repeating the query, the three reasoning steps and the
   strict output format ``[2] > [1] > [3]``.

`build_messages` returns that message list, `render_prompt` renders it with the
model's chat template for generation, and `encode_training_example` renders it
with a target answer and masks the prompt tokens out of the loss. The
reranker, the fine-tuning data and the trainer all call these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

SYSTEM_PROMPT = "You are RankLLM, an assistant that ranks passages by relevance to the query."

# Passages are cut to their first 300 whitespace-separated words, as in DeAR's
# reference code (its argument is named max_passage_tokens, but it counts words).
DEFAULT_MAX_WORDS = 300

# Label value that PyTorch's cross-entropy ignores.
IGNORE_INDEX = -100


def identifier(position: int) -> str:
    """Return the identifier of the passage at 0-based `position`: ``[1]`` for the first."""
    return f"[{position + 1}]"


def format_ranking(order: Sequence[int]) -> str:
    """Write a 0-based order in the answer format that the prompt requests.

    >>> format_ranking([1, 0, 2])
    '[2] > [1] > [3]'
    """
    return " > ".join(identifier(index) for index in order)


def format_target(order: Sequence[int], reasoning: str | None = None) -> str:
    """Write a training target: the reasoning inside ``<think>`` tags, then the ranking.

    >>> format_target([1, 0], "Passage [2] names the year.")
    '<think>\\nPassage [2] names the year.\\n</think>\\n\\n[2] > [1]'
    """
    ranking = format_ranking(order)
    if not reasoning:
        return ranking
    # NOTE: the whitespace around the tags in DeAR-COT's targets is a guess, because
    # the data set was not available offline; parse_answer accepts any whitespace there.
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{ranking}"


def truncate_words(text: str, max_words: int = DEFAULT_MAX_WORDS) -> str:
    """Keep the first `max_words` whitespace-separated words, joined by single spaces.

    The placeholder ``Title: Content: `` that a corpus writes for a passage
    without a title is removed first, as DeAR's reference does, so MS MARCO
    passages start with their text.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    text = text.replace("Title: Content: ", "")
    return " ".join(text.split()[:max_words])


def build_messages(
    query: str,
    passages: Sequence[str],
    max_words: int = DEFAULT_MAX_WORDS,
) -> list[dict[str, str]]:
    """Build DeAR's chat messages for ranking `passages` (texts, in window order) for `query`."""
    count = len(passages)
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"I will provide you with {count} passages, each indicated by number identifier [].\n"
            f"Rank the passages based on their relevance to query: {query}.",
        },
        {"role": "assistant", "content": "Okay, please provide the passages."},
    ]
    for position, text in enumerate(passages):
        messages.append({"role": "user", "content": f"{identifier(position)} {truncate_words(text, max_words)}"})
        messages.append({"role": "assistant", "content": f"Received passage {identifier(position)}."})
    messages.append({"role": "user", "content": _final_instruction(query, count)})
    return messages


def _final_instruction(query: str, count: int) -> str:
    return (
        f"Search Query: {query}.\n"
        f"Rank the {count} passages above based on their relevance to the search query. "
        "The passages should be listed in descending order using identifiers.\n"
        "Please follow the steps below:\n"
        "Step 1. List the information requirements to answer the query.\n"
        "Step 2. For each requirement, find the passages containing that information.\n"
        "Step 3. Rank passages that best cover clear and diverse information. Include all passages.\n"
        "Output format strictly: [2] > [1] > [3] ... Only output the ranking using identifiers; no explanations."
    )


@dataclass(frozen=True)
class RenderedPrompt:
    """A conversation rendered by a chat template, as text and as token ids."""

    text: str
    input_ids: list[int]


def _render(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)!r} has no chat "
            "template; load the tokenizer of the instruction-tuned model (Llama-3.1-8B-Instruct for DeAR-L)"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _token_ids(tokenizer, text: str) -> list[int]:
    # The chat template already writes the BOS token, so the tokenizer must not add
    # another. DeAR's reference tokenizes the rendered text with special tokens and
    # so starts Llama-3 prompts with two BOS tokens; the fine-tuning saw one.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> RenderedPrompt:
    """Render `messages` with the tokenizer's chat template, ending where the assistant answers."""
    text = _render(tokenizer, messages, add_generation_prompt=True)
    return RenderedPrompt(text=text, input_ids=_token_ids(tokenizer, text))


@dataclass(frozen=True)
class TrainingExample:
    """A prompt and its target answer as one token sequence, with the prompt masked in `labels`."""

    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt, the token ids on the answer


def encode_training_example(tokenizer, messages: list[dict[str, str]], target: str) -> TrainingExample:
    """Render `messages` plus the assistant's `target` answer for supervised fine-tuning.

    The prompt is tokenized exactly as `render_prompt` tokenizes it for
    inference, and the answer, with the template's end-of-turn tokens, is
    tokenized on its own, so the loss covers the assistant's tokens only and the
    model learns to stop.
    """
    prompt = render_prompt(tokenizer, messages)
    full_text = _render(tokenizer, [*messages, {"role": "assistant", "content": target}], add_generation_prompt=False)
    if not full_text.startswith(prompt.text):
        raise ValueError(
            "the chat template renders the conversation with an answer differently from the prompt "
            "alone, so the answer tokens cannot be separated; use a template whose generation "
            "prompt is a prefix of the rendered answer turn (Llama-3 and ChatML templates are)"
        )
    answer_ids = _token_ids(tokenizer, full_text[len(prompt.text):])
    return TrainingExample(
        input_ids=prompt.input_ids + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt.input_ids) + answer_ids,
    )
