"""DeAR-L's chat prompt: wording, truncation, rendering and training masks."""


import pytest

from dear_ir.listwise.prompt import (
    IGNORE_INDEX,
    SYSTEM_PROMPT,
    build_messages,
    encode_training_example,
    format_ranking,
    format_target,
    render_prompt,
    truncate_words,
)


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_folder):
    """The offline SmolLM2 tokenizer (see conftest.py)."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(smollm2_tokenizer_folder)


def test_messages_match_dear_wording():
    messages = build_messages("how tall is k2", ["K2 is 8,611 m high.", "Everest is taller."])
    assert messages == [
        {"role": "system", "content": "You are RankLLM, an assistant that ranks passages by relevance to the query."},
        {
            "role": "user",
            "content": "I will provide you with 2 passages, each indicated by number identifier [].\n"
            "Rank the passages based on their relevance to query: how tall is k2.",
        },
        {"role": "assistant", "content": "Okay, please provide the passages."},
        {"role": "user", "content": "[1] K2 is 8,611 m high."},
        {"role": "assistant", "content": "Received passage [1]."},
        {"role": "user", "content": "[2] Everest is taller."},
        {"role": "assistant", "content": "Received passage [2]."},
        {
            "role": "user",
            "content": "Search Query: how tall is k2.\n"
            "Rank the 2 passages above based on their relevance to the search query. "
            "The passages should be listed in descending order using identifiers.\n"
            "Please follow the steps below:\n"
            "Step 1. List the information requirements to answer the query.\n"
            "Step 2. For each requirement, find the passages containing that information.\n"
            "Step 3. Rank passages that best cover clear and diverse information. Include all passages.\n"
            "Output format strictly: [2] > [1] > [3] ... Only output the ranking using identifiers; "
            "no explanations.",
        },
    ]


def test_messages_roles_and_count():
    messages = build_messages("q", [f"passage {i}" for i in range(20)])
    assert len(messages) == 3 + 2 * 20 + 1
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert [m["role"] for m in messages[3:-1]] == ["user", "assistant"] * 20
    assert messages[-2]["content"] == "Received passage [20]."
    assert "Rank the 20 passages above" in messages[-1]["content"]


def test_truncate_words_default_300():
    text = " ".join(f"w{i}" for i in range(400))
    assert truncate_words(text).split() == [f"w{i}" for i in range(300)]
    assert build_messages("q", [text])[3]["content"] == "[1] " + " ".join(f"w{i}" for i in range(300))


def test_truncate_words_normalizes_space():
    assert truncate_words("  a\n\tb   c ", max_words=2) == "a b"


def test_truncate_words_drops_empty_title():
    assert truncate_words("Title: Content: The text.") == "The text."
    assert truncate_words("Title: Covid Content: The text.") == "Title: Covid Content: The text."


def test_truncate_words_rejects_zero():
    with pytest.raises(ValueError, match="max_words"):
        truncate_words("a", max_words=0)


def test_format_ranking_and_target():
    assert format_ranking([2, 0, 1]) == "[3] > [1] > [2]"
    assert format_target([1, 0]) == "[2] > [1]"
    assert format_target([1, 0], " why ").endswith("</think>\n\n[2] > [1]")


def test_render_prompt_matches_chat_template(tokenizer):
    messages = build_messages("q", ["a b c", "d e"])
    prompt = render_prompt(tokenizer, messages)
    expected = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)["input_ids"]
    assert prompt.input_ids == list(expected)
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert prompt.text.count("<|im_start|>user\n[2] d e<|im_end|>") == 1


def test_render_prompt_without_template(tokenizer):
    bare = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        render_prompt(bare, build_messages("q", ["a"]))


def test_training_example_masks_prompt(tokenizer):
    messages = build_messages("q", ["a b c", "d e"])
    target = format_target([1, 0], "Passage [2] is closer.")
    example = encode_training_example(tokenizer, messages, target)
    prompt = render_prompt(tokenizer, messages)

    assert example.input_ids[: len(prompt.input_ids)] == prompt.input_ids
    assert example.labels[: len(prompt.input_ids)] == [IGNORE_INDEX] * len(prompt.input_ids)
    answer = [label for label in example.labels if label != IGNORE_INDEX]
    assert answer == example.input_ids[len(prompt.input_ids):]
    assert tokenizer.decode(answer) == target + "<|im_end|>\n"
