"""Pointwise student training on tiny random models: the loss falls, and the saved student scores as in memory."""

import json
import random

import numpy as np
import pytest
import torch

from dear_ir import dump_teacher as dt
from dear_ir.pointwise import CrossEncoderScorer, dear_logits_compact, dear_logits_fixed, encode_dear_pairs, load_scorer
from dear_ir.runs import Run
from dear_ir.train import pointwise as tp
from dear_ir.train.collate import GroupCollator, additive_attention_mask, dear_forward_inputs


class OverlapScorer:
    """A stand-in teacher: the share of query words in the passage."""

    name = "overlap"
    settings = {"scorer": "bi-encoder"}

    def score(self, pairs):
        return [len(set(q.split()) & set(t.split())) / len(set(q.split())) for q, t in pairs]


class DictSource:
    name = "dict corpus"

    def __init__(self, texts):
        self.texts = texts

    def text(self, docid):
        return self.texts.get(docid)


def write_training_dump(path, queries=12, group_size=4):
    """Write a dump whose positive repeats the query's words and whose negatives do not."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(200)]
    topics, texts, rankings, qrels = {}, {}, {}, {}
    for q in range(queries):
        qid = str(q)
        query_words = rng.sample(words, 3)
        topics[qid] = " ".join(query_words)
        hits = []
        for rank in range(10):
            docid = f"{qid}-{rank}"
            filler = rng.sample(words, 8)
            texts[docid] = " ".join(query_words + filler if rank == 3 else filler)
            hits.append((docid, 10.0 - rank))
        rankings[qid] = hits
        qrels[qid] = {f"{qid}-3": 1}
    dt.dump_teacher(
        Run(rankings, name="synthetic"), topics, DictSource(texts), OverlapScorer(), path,
        qrels=qrels, sampling=dt.SamplingSettings(group_size=group_size, max_positives=1),
    )
    return path


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models run far faster on one thread: with two, every small matmul
    # waits for a second core that other processes may hold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_llama_folder(tmp_path, tiny_llama_classifier, word_tokenizer):
    folder = tmp_path / "tiny-llama"
    tiny_llama_classifier.save_pretrained(folder)
    word_tokenizer.save_pretrained(folder)
    return folder


def losses_of(student):
    return [entry["loss"] for entry in student.trainer_log if "loss" in entry]


def train_tiny(tmp_path, model, **overrides):
    dump = write_training_dump(tmp_path / "teacher.jsonl")
    settings = dict(
        teacher_logits=[str(dump)], model=str(model), output=str(tmp_path / "student"),
        lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=5e-3, head_learning_rate=5e-2,
        epochs=10, groups_per_step=4, warmup=0.0, logging_steps=1, save_steps=1000, show_progress=False,
    )
    settings.update(overrides)
    return tp.train_pointwise(tp.PointwiseTrainingConfig(**settings))


def logged_losses(output):
    state = sorted((output / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    history = json.loads(state[-1].read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def test_forward_inputs_match_dear_readout(tiny_llama_classifier, word_tokenizer):
    pairs = [("what is wifi", "w1 w2 " * n) for n in (1, 7, 30, 120)]
    sequences = encode_dear_pairs(word_tokenizer, pairs)
    pad = word_tokenizer.eos_token_id
    inputs = dear_forward_inputs(sequences, pad)
    inputs["attention_mask"] = additive_attention_mask(inputs["attention_mask"], torch.float32)
    with torch.no_grad():
        through_forward = tiny_llama_classifier(**inputs).logits[:, 0]
        fixed = dear_logits_fixed(tiny_llama_classifier, sequences, pad)
        compact = dear_logits_compact(tiny_llama_classifier, sequences, pad)
    assert torch.allclose(through_forward, fixed, atol=1e-5, rtol=0)
    assert torch.allclose(through_forward, compact, atol=1e-5, rtol=0)


def test_collator_shapes(tmp_path, word_tokenizer):
    dump = write_training_dump(tmp_path / "teacher.jsonl", queries=3, group_size=4)
    _, groups = dt.read_dump(dump)
    batch = GroupCollator(word_tokenizer, "dear")(groups[:2])
    assert batch["teacher_logits"].shape == (2, 4)
    assert batch["model_inputs"]["input_ids"].shape[0] == 8
    assert batch["model_inputs"]["attention_mask"].dtype == torch.bool


def test_lora_student_trains_and_reloads(tmp_path, tiny_llama_folder, word_tokenizer):
    student = train_tiny(tmp_path, tiny_llama_folder, save_steps=15)
    output = tmp_path / "student"

    losses = logged_losses(output)
    assert len(losses) >= 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1

    assert (output / "adapter_config.json").is_file()
    assert (output / "adapter_model.safetensors").is_file()
    metadata = json.loads((output / "dear_ir.json").read_text())
    assert metadata["base_model"] == str(tiny_llama_folder)
    assert metadata["convention"] == "dear"
    assert metadata["training"] == "lora"
    assert metadata["loss"] == {"main": "hybrid", "alpha": 0.1, "temperature": 2.0}
    assert metadata["teacher"]["name"] == "overlap"
    assert metadata["teacher"]["logit_scale"] == 20.0
    adapter = json.loads((output / "adapter_config.json").read_text())
    assert "score" in adapter["modules_to_save"]
    assert sorted(adapter["target_modules"]) == sorted(tp.DEAR_LORA_TARGETS)

    _, groups = dt.read_dump(tmp_path / "teacher.jsonl")
    pairs = [(group.query, text) for group in groups[:4] for text in group.texts]
    student.model.eval()
    in_memory = CrossEncoderScorer(student.model, word_tokenizer, name="in-memory", show_progress=False).score(pairs)
    loaded = load_scorer(str(output), show_progress=False)
    assert loaded.settings["convention"] == "dear"
    assert np.allclose(loaded.score(pairs), in_memory, atol=1e-5)

    # The trained student ranks each group's positive first more often than chance.
    scores = loaded.score([(group.query, text) for group in groups for text in group.texts]).reshape(len(groups), -1)
    assert (scores.argmax(axis=1) == 0).mean() > 0.5


def test_finished_student_is_skipped(tmp_path, tiny_llama_folder):
    train_tiny(tmp_path, tiny_llama_folder, max_steps=2)
    again = train_tiny(tmp_path, tiny_llama_folder, max_steps=2)
    assert again.model is None


def test_training_resumes_from_checkpoint(tmp_path, tiny_llama_folder, caplog):
    train_tiny(tmp_path, tiny_llama_folder, max_steps=4, save_steps=2)
    output = tmp_path / "student"
    # Remove the finished marker so that the run looks interrupted after its checkpoints.
    (output / "dear_ir.json").unlink()
    with caplog.at_level("INFO"):
        student = train_tiny(tmp_path, tiny_llama_folder, max_steps=6, save_steps=2)
    assert "resuming from" in caplog.text
    assert student.metadata["steps"] == 6


def test_full_fine_tuning_standard_convention(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from dear_ir.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm").path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    base = tmp_path / "tiny-bert"
    BertForSequenceClassification(config).save_pretrained(base)
    tokenizer.save_pretrained(base)

    student = train_tiny(tmp_path, base, full=True, learning_rate=1e-3, head_learning_rate=1e-2, epochs=6)
    output = tmp_path / "student"
    metadata = json.loads((output / "dear_ir.json").read_text())
    assert metadata["convention"] == "standard"
    assert metadata["head"] == "classifier"
    assert metadata["training"] == "full"
    assert (output / "model.safetensors").is_file()

    pairs = [("w1 w2 w3", "w1 w2 w3 w9"), ("w1 w2 w3", "w7 w8"), ("w4", "w4 w5")]
    student.model.eval()
    in_memory = CrossEncoderScorer(student.model, tokenizer, name="in-memory", convention="standard",
                                   show_progress=False).score(pairs)
    loaded = load_scorer(str(output), show_progress=False)
    assert loaded.settings["convention"] == "standard"
    assert np.allclose(loaded.score(pairs), in_memory, atol=1e-5)


def test_head_gets_its_own_learning_rate(tmp_path, tiny_llama_folder):
    from transformers import TrainingArguments

    config = tp.PointwiseTrainingConfig(teacher_logits=[], model=str(tiny_llama_folder), output="unused",
                                        lora_r=4, lora_alpha=8)
    model, tokenizer, convention, head = tp.build_student(config)
    assert head == "score"
    assert convention == "dear"
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any(".score." in f".{name}" for name in trainable)
    assert all("lora_" in name or "score" in name for name in trainable)

    GroupTrainer, _ = tp._make_trainer_class()
    trainer = GroupTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, report_to="none"),
        loss_name="ce", alpha=0.0, temperature=2.0, convention=convention, head=head, head_learning_rate=3e-3,
    )
    optimizer = trainer.create_optimizer()
    rates = {}
    names = {id(p): name for name, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            rates[names[id(parameter)]] = group["lr"]
    assert {rate for name, rate in rates.items() if "score" in name} == {3e-3}
    assert {rate for name, rate in rates.items() if "lora_" in name} == {1e-4}


def test_cli_dispatch_help(capsys):
    from dear_ir.train.__main__ import main

    assert main(["--help"]) == 0
    assert "pointwise" in capsys.readouterr().out
    assert main(["nonsense"]) == 2
    with pytest.raises(SystemExit) as raised:
        main(["pointwise", "--help"])
    assert raised.value.code == 0
    assert "--teacher-logits" in capsys.readouterr().out


def test_zero_steps_saves_untrained_start(tmp_path, tiny_llama_folder, word_tokenizer):
    student = train_tiny(tmp_path, tiny_llama_folder, max_steps=0)
    output = tmp_path / "student"
    assert student.metadata["steps"] == 0
    assert student.metadata["train_loss"] is None
    assert not any((output / "checkpoints").glob("checkpoint-*"))

    pairs = [("w1 w2", "w1 w2 w3"), ("w1 w2", "w9 w8")]
    student.model.eval()
    in_memory = CrossEncoderScorer(student.model, word_tokenizer, name="in-memory", show_progress=False).score(pairs)
    assert np.allclose(load_scorer(str(output), show_progress=False).score(pairs), in_memory, atol=1e-6)


def test_group_size_keeps_first_negatives(tmp_path):
    dump = write_training_dump(tmp_path / "teacher.jsonl", queries=2, group_size=4)
    _, groups = dt.read_dump(dump)
    smaller = tp.shrink_groups(groups, 2)
    assert [g.docids for g in smaller] == [g.docids[:2] for g in groups]
    assert [g.logits for g in smaller] == [g.logits[:2] for g in groups]
    with pytest.raises(ValueError, match="between 2 and the dumped group size 4"):
        tp.shrink_groups(groups, 5)


def test_kendall_tau_per_query():
    from dear_ir.train.fidelity import kendall_tau_per_query, mean_kendall_tau

    teacher = Run({"1": [("a", 3.0), ("b", 2.0), ("c", 1.0)], "2": [("x", 2.0), ("y", 1.0)], "3": [("z", 1.0)]})
    student = Run({"1": [("a", 3.0), ("c", 2.0), ("b", 1.0)], "2": [("y", 5.0), ("x", 4.0)], "3": [("z", 1.0)]})
    taus = kendall_tau_per_query(student, teacher)
    # Query 1: pairs (a,b) and (a,c) agree, (b,c) disagrees, so tau = (2 - 1) / 3.
    assert taus["1"] == pytest.approx(1 / 3)
    assert taus["2"] == pytest.approx(-1.0)
    assert "3" not in taus
    assert mean_kendall_tau(student, teacher) == pytest.approx((1 / 3 - 1) / 2)


def test_kendall_tau_depth_ignores_tail():
    from dear_ir.train.fidelity import kendall_tau_per_query

    teacher = Run({"1": [("a", 4.0), ("b", 3.0), ("c", 2.0), ("d", 1.0)]})
    student = Run({"1": [("b", 4.0), ("a", 3.0), ("c", 2.0), ("d", 1.0)]})
    assert kendall_tau_per_query(student, teacher, depth=2)["1"] == pytest.approx(-1.0)
    assert kendall_tau_per_query(student, teacher)["1"] == pytest.approx(4 / 6)


def test_lora_on_last_layers_only(tiny_llama_folder):
    config = tp.PointwiseTrainingConfig(teacher_logits=[], model=str(tiny_llama_folder), output="unused",
                                        lora_r=4, lora_alpha=8, lora_layers=1)
    model, _, _, _ = tp.build_student(config)
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in model.named_parameters() if "lora_" in name}
    assert adapted == {"2"}
    with pytest.raises(ValueError, match="between 1 and the model's 3 layers"):
        tp.build_student(tp.PointwiseTrainingConfig(teacher_logits=[], model=str(tiny_llama_folder), output="unused",
                                                    lora_layers=4))
