"""Listwise fine-tuning: loss on the answer only, LoRA on a tiny random Llama."""

import json
import math

import pytest
import torch

from dear_ir.candidates import Candidates, Passage
from dear_ir.listwise.data import build_rows, write_rows
from dear_ir.listwise.prompt import IGNORE_INDEX
from dear_ir.train.listwise import ListwiseTrainingConfig, PaddingCollator, encode_rows, train_listwise
from tests.conftest import tiny_chat_config

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_folder):
    """The offline SmolLM2 tokenizer (see conftest.py)."""
    return transformers.AutoTokenizer.from_pretrained(smollm2_tokenizer_folder)


@pytest.fixture(scope="module")
def rows():
    queries = [
        Candidates(f"q{q}", f"query {q}", [Passage(f"d{i}", f"passage {i} of query {q}", -i) for i in range(4)])
        for q in range(3)
    ]
    teacher = {f"q{q}": {f"d{i}": float((i + q) % 4) for i in range(4)} for q in range(3)}
    return list(build_rows(queries, teacher, reasoning={"q0": "Passage [4] names it."}))


@pytest.fixture(scope="module")
def tiny_llama_folder(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    config = tiny_chat_config(tokenizer, max_position_embeddings=2048)
    folder = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_encode_rows_masks_prompt(tokenizer, rows):
    examples = encode_rows(rows, tokenizer, max_length=4096)
    assert len(examples) == 3

    answer = [label for label in examples[0]["labels"] if label != IGNORE_INDEX]
    text = tokenizer.decode(answer)
    assert text.startswith("<think>\nPassage [4] names it.\n</think>\n\n[4] > [3]")
    assert text.endswith("<|im_end|>\n")
    assert examples[0]["labels"][0] == IGNORE_INDEX


def test_encode_rows_skips_long(tokenizer, rows):
    lengths = [len(example["input_ids"]) for example in encode_rows(rows, tokenizer, max_length=4096)]
    assert len(encode_rows(rows, tokenizer, max_length=min(lengths))) == lengths.count(min(lengths))
    with pytest.raises(ValueError, match="no row fits in 10 tokens"):
        encode_rows(rows, tokenizer, max_length=10)


def test_padding_collator():
    batch = PaddingCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]},
        {"input_ids": [8], "labels": [8]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def small_config(rows, folder, tmp_path, **settings):
    """Return a two-step training config on `rows`, with `settings` overriding the defaults."""
    data = write_rows(rows, tmp_path / "rows.jsonl")
    defaults = dict(
        data=[str(data)], model=str(folder), output=str(tmp_path / "student"),
        max_steps=2, rows_per_step=2, gradient_accumulation=1, bf16="no", show_progress=False,
        logging_steps=1, save_steps=100,
    )
    return ListwiseTrainingConfig(**{**defaults, **settings})


def test_train_lora_saves_adapter(tiny_llama_folder, rows, tmp_path):
    output = train_listwise(small_config(rows, tiny_llama_folder, tmp_path))

    assert (output / "adapter_config.json").is_file()
    metadata = json.loads((output / "dear_ir.json").read_text())
    assert metadata["stage"] == "listwise"
    assert metadata["steps"] == 2
    assert metadata["examples"] == 3
    assert math.isfinite(metadata["train_loss"])
    assert "q_proj" in metadata["lora"]["targets"]

    # The adapter folder loads back as a causal LM through the model loader.
    from dear_ir.models import load_causal_lm

    model, _ = load_causal_lm(str(output))
    assert hasattr(model, "peft_config")


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bfloat16 instructions")
def test_bf16_training_on_cpu(rows, tiny_llama_folder, tmp_path):
    output = train_listwise(small_config(rows, tiny_llama_folder, tmp_path, bf16="yes"))

    metadata = json.loads((output / "dear_ir.json").read_text())
    assert metadata["steps"] == 2
    assert math.isfinite(metadata["train_loss"])


def test_bf16_rejected_without_hardware(monkeypatch):
    from dear_ir.train.pointwise import bf16_arguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="--bf16 yes is invalid"):
        bf16_arguments("yes")
    assert bf16_arguments("auto") == {"bf16": False, "use_cpu": False}


def test_train_lora_last_layers_and_budget(tiny_llama_folder, rows, tmp_path):
    config = small_config(rows, tiny_llama_folder, tmp_path, max_steps=50, lora_layers=1, max_minutes=1e-6)
    output = train_listwise(config)

    metadata = json.loads((output / "dear_ir.json").read_text())
    layers = transformers.AutoConfig.from_pretrained(tiny_llama_folder).num_hidden_layers
    assert metadata["lora"]["layers"] == [layers - 1]
    # The time budget stops training after the first step, with a checkpoint.
    assert metadata["steps"] == 1
    assert (output / "checkpoints" / "checkpoint-1").is_dir()
    adapter = json.loads((output / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [layers - 1]


def test_train_resumes_from_checkpoint(tiny_llama_folder, rows, tmp_path, caplog):
    output = train_listwise(small_config(rows, tiny_llama_folder, tmp_path, save_steps=2))
    # Without the finished marker the run looks interrupted after its checkpoint.
    (output / "dear_ir.json").unlink()

    with caplog.at_level("INFO"):
        train_listwise(small_config(rows, tiny_llama_folder, tmp_path, save_steps=2, max_steps=3))

    assert "resuming from" in caplog.text
    assert json.loads((output / "dear_ir.json").read_text())["steps"] == 3


def test_gguf_flag_removed(tiny_llama_folder):
    from dear_ir.train.listwise import _without_gguf_flag

    model = transformers.LlamaForCausalLM.from_pretrained(tiny_llama_folder)
    model.config.quantization_config = {"quant_method": "gguf"}
    plain = _without_gguf_flag(model)

    assert getattr(plain.config, "quantization_config", None) is None
    assert torch.equal(plain.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert _without_gguf_flag(plain) is plain
