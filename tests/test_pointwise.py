"""DeAR-P encoding and read-out on tiny random LLaMA models, batching, and top-k reranking."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dear_ir.candidates import Candidates, Passage
from dear_ir.pointwise import (
    DEAR_PADDED_LENGTH,
    CrossEncoderScorer,
    dear_logits_compact,
    dear_logits_fixed,
    encode_dear_pairs,
    load_scorer,
    rerank_pointwise,
    token_budget_batches,
)


def random_text(rng: random.Random, words: int) -> str:
    return " ".join(f"w{rng.randrange(200)}" for _ in range(words))


def random_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        query = random_text(rng, rng.randint(1, 40))
        pairs.append((query, random_text(rng, rng.choice([0, 1, 5, 60, 150, 400]))))
    return pairs


def test_encoding_follows_dear_template(word_tokenizer):
    ids = encode_dear_pairs(word_tokenizer, [("what is wifi", "the fish")])[0]
    tokens = word_tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["<s>", "query", ":", "what", "is", "wifi", "<s>", "document", ":", "the", "fish"]


def test_encoding_truncates_to_32_and_193(word_tokenizer):
    long_query = " ".join(["w1"] * 100)
    long_document = " ".join(["w2"] * 1000)
    ids = encode_dear_pairs(word_tokenizer, [(long_query, long_document)])[0]
    bos = word_tokenizer.bos_token_id
    second_bos = ids.index(bos, 1)
    assert second_bos - 1 == 32
    assert len(ids) - second_bos - 1 == 193
    assert len(ids) == DEAR_PADDED_LENGTH - 1


def test_fixed_readout_equals_hugging_face_pooling(tiny_llama_classifier, word_tokenizer):
    model, tokenizer = tiny_llama_classifier, word_tokenizer
    assert model.config.pad_token_id == 0
    pairs = random_pairs(6)
    sequences = encode_dear_pairs(tokenizer, pairs)

    # Hugging Face's own path: right-pad with EOS to 228 tokens; pooling finds the
    # last token whose id differs from pad_token_id 0, i.e. position 227.
    tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer.pad([{"input_ids": s} for s in sequences], padding="max_length",
                          max_length=DEAR_PADDED_LENGTH, return_tensors="pt")
    assert (batch["input_ids"][:, -1] == tokenizer.eos_token_id).all()
    with torch.no_grad():
        expected = model(**batch).logits[:, 0]
        fixed = dear_logits_fixed(model, sequences, tokenizer.eos_token_id)
    # The head runs on one position here and on all 228 in Hugging Face's path,
    # so the two matrix products may round differently in the last bits.
    assert torch.allclose(fixed, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_compact_equals_fixed_mixed_lengths(word_tokenizer, attention):
    from transformers import LlamaForSequenceClassification

    from tests.conftest import tiny_llama_config

    torch.manual_seed(1)
    config = tiny_llama_config(len(word_tokenizer), attn_implementation=attention)
    model = LlamaForSequenceClassification(config).eval()
    sequences = encode_dear_pairs(word_tokenizer, random_pairs(12, seed=3))
    assert len({len(s) for s in sequences}) > 3

    with torch.no_grad():
        fixed = dear_logits_fixed(model, sequences, word_tokenizer.eos_token_id)
        compact = dear_logits_compact(model, sequences, word_tokenizer.eos_token_id)
    assert torch.allclose(compact, fixed, atol=1e-5, rtol=0)


def test_compact_equals_fixed_with_lora(tiny_llama_classifier, word_tokenizer):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                        modules_to_save=["score"], init_lora_weights=False, task_type="SEQ_CLS")
    torch.manual_seed(2)
    model = get_peft_model(tiny_llama_classifier, config).eval()
    sequences = encode_dear_pairs(word_tokenizer, random_pairs(8, seed=5))
    with torch.no_grad():
        fixed = dear_logits_fixed(model, sequences, word_tokenizer.eos_token_id)
        compact = dear_logits_compact(model, sequences, word_tokenizer.eos_token_id)
        unwrapped = dear_logits_fixed(model.get_base_model(),
                                      sequences, word_tokenizer.eos_token_id)
    assert torch.allclose(compact, fixed, atol=1e-5, rtol=0)
    assert torch.equal(unwrapped, fixed)


def test_compact_bf16_ranking_agrees(tiny_llama_classifier, word_tokenizer):
    from scipy.stats import kendalltau

    pairs = random_pairs(60, seed=7)
    scorer = CrossEncoderScorer(tiny_llama_classifier, word_tokenizer, name="tiny", show_progress=False)
    fixed_fp32 = CrossEncoderScorer(tiny_llama_classifier, word_tokenizer, name="tiny", padding="fixed",
                                    show_progress=False).score(pairs)
    scorer.model.to(torch.bfloat16)
    compact_bf16 = scorer.score(pairs)
    tau = kendalltau(fixed_fp32, compact_bf16).statistic
    assert tau >= 0.99


def test_scorer_restores_input_order(tiny_llama_classifier, word_tokenizer):
    pairs = random_pairs(30, seed=11)
    small = CrossEncoderScorer(tiny_llama_classifier, word_tokenizer, name="tiny", max_batch_tokens=300,
                               show_progress=False).score(pairs)
    one_by_one = np.array([
        CrossEncoderScorer(tiny_llama_classifier, word_tokenizer, name="tiny", show_progress=False).score([pair])[0]
        for pair in pairs
    ])
    assert np.allclose(small, one_by_one, atol=1e-5)


def test_adapter_folder_loads_with_equal_scores(tmp_path, tiny_llama_classifier, word_tokenizer):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForSequenceClassification

    base_dir = tmp_path / "base"
    tiny_llama_classifier.save_pretrained(base_dir)
    word_tokenizer.save_pretrained(base_dir)

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["score"],
                        init_lora_weights=False, task_type="SEQ_CLS")
    torch.manual_seed(3)
    base = LlamaForSequenceClassification.from_pretrained(base_dir)
    model = get_peft_model(base, config).eval()
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file()

    pairs = random_pairs(10, seed=13)
    in_memory = CrossEncoderScorer(model, word_tokenizer, name="in-memory", show_progress=False).score(pairs)
    loaded = load_scorer(str(adapter_dir), show_progress=False)
    assert loaded.settings["convention"] == "dear"
    assert np.allclose(loaded.score(pairs), in_memory, atol=1e-6)
    base_scores = load_scorer(str(base_dir), show_progress=False).score(pairs)
    assert not np.allclose(base_scores, in_memory, atol=1e-4)


def test_token_budget_batches_cover_all():
    lengths = [5, 100, 7, 100, 50, 3, 228, 1]
    batches = token_budget_batches(lengths, max_batch_tokens=250, max_batch_size=3)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) * max(lengths[i] for i in batch) <= 250 or len(batch) == 1


def test_empty_pairs_score_nothing(tiny_llama_classifier, word_tokenizer):
    scorer = CrossEncoderScorer(tiny_llama_classifier, word_tokenizer, name="tiny", show_progress=False)
    assert scorer.score([]).shape == (0,)


class FixedScorer:
    name = "fixed"
    settings: dict = {}

    def __init__(self, scores: dict[str, float]):
        self.scores = scores

    def score(self, pairs):
        return np.array([self.scores[text] for _, text in pairs], dtype=np.float32)


def test_top_k_keeps_tail_in_input_order():
    passages = [Passage(f"d{i}", f"t{i}", 10.0 - i) for i in range(6)]
    candidates = [Candidates("q1", "query", passages)]
    scorer = FixedScorer({"t0": 0.1, "t1": 0.9, "t2": 0.5, "t3": 9.0, "t4": 9.0, "t5": 9.0})

    reranked = rerank_pointwise(candidates, scorer, top_k=3)[0]
    assert [p.docid for p in reranked.passages] == ["d1", "d2", "d0", "d3", "d4", "d5"]
    scores = [p.score for p in reranked.passages]
    assert all(a > b for a, b in zip(scores, scores[1:]))


def test_top_k_handles_empty_candidate_list():
    reranked = rerank_pointwise([Candidates("q1", "query", [])], FixedScorer({}), top_k=3)
    assert reranked[0].passages == []
