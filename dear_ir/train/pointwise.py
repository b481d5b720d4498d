"""Pointwise student training (DeAR-P) from teacher-logit dumps.

    python -m dear_ir.train pointwise --teacher-logits teacher/train.jsonl \\
        --model smollm2 --loss hybrid --alpha 0.1 --temperature 2 --output models/student

The student is any sequence classifier with one output logit. By default it
trains LoRA adapters (DeAR's values for LLaMA: r 32, alpha 64, dropout 0.1 on
q, v, o, gate, up and down projections) and the classification head in full.
`--full` trains every weight instead. The head gets its own learning rate,
because a freshly initialised head at the body's learning rate barely moves
within a short run. The loss is ``(1 - alpha) * main + alpha * KL`` of
`dear_ir.train.losses`, computed per query group with the positive first.

Training reads teacher logits from the dumps and never loads the teacher. It
runs on the Hugging Face Trainer, so `torchrun` or `accelerate launch` spread
it over several GPUs with no code here. Checkpoints go to OUTPUT/checkpoints
and a restart resumes from the latest. The finished folder contains the adapter
(or the full model), the tokenizer and `dear_ir.json`, from which
`dear_ir.rerank` reads the base model and input convention to score with.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

logger = logging.getLogger(__name__)

# DeAR's LoRA targets for LLaMA students, as in its training code (pointwise_reranker/modeling.py).
DEAR_LORA_TARGETS = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_LEARNING_RATE = 1e-4
# The head's learning rate is this multiple of the body's unless set.
DEFAULT_HEAD_LEARNING_RATE_FACTOR = 10.0
HEAD_NAMES = ("score", "classifier")


@dataclass
class PointwiseTrainingConfig:
    """Settings of one student training run; stored in `dear_ir.json`."""

    teacher_logits: list[str]
    model: str
    output: str
    loss: str = "hybrid"
    alpha: float = 0.1
    temperature: float = 2.0
    full: bool = False
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None
    lora_layers: int | None = None
    learning_rate: float = DEFAULT_LEARNING_RATE
    head_learning_rate: float | None = None
    weight_decay: float = 0.0
    epochs: float = 2.0
    max_steps: int = -1
    max_minutes: float | None = None
    groups_per_step: int = 16
    gradient_accumulation: int = 1
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    bf16: str = "auto"
    gradient_checkpointing: bool = False
    save_steps: int = 200
    logging_steps: int = 10
    seed: int = 42
    max_groups: int | None = None
    group_size: int | None = None
    max_length: int | None = None
    threads: int | None = None
    overwrite: bool = False
    show_progress: bool = True
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The student


def head_name(model) -> str:
    """Return the attribute name of a sequence classifier's head ("score" or "classifier")."""
    import torch

    from dear_ir.models import base_model

    base = base_model(model)
    for name in HEAD_NAMES:
        if isinstance(getattr(base, name, None), torch.nn.Module):
            return name
    raise ValueError(
        f"{type(base).__name__} has neither a `score` nor a `classifier` head; "
        "pass a model that AutoModelForSequenceClassification can load"
    )


def lora_targets_for(model, requested: list[str] | None) -> list[str] | None:
    """Return the LoRA target modules: as requested, DeAR's for LLaMA, else PEFT's default for the type."""
    if requested:
        return list(requested)
    if model.config.model_type == "llama":
        return list(DEAR_LORA_TARGETS)
    return None


def _forget_gguf_origin(model) -> None:
    """Mark a model loaded from a GGUF file as the plain float model it is.

    transformers dequantizes GGUF weights into ordinary float tensors on load
    but still flags the model as GGUF-quantized, and the Trainer rejects such a
    model for training. Dropping the flag makes it trainable and savable.
    """
    quantization = getattr(model.config, "quantization_config", None)
    if quantization is None:
        return
    if isinstance(quantization, dict):
        method = quantization.get("quant_method")
    else:
        method = getattr(quantization, "quant_method", None)
    if str(getattr(method, "value", method)).lower() != "gguf":
        return
    model.is_quantized = False
    model.hf_quantizer = None
    del model.config.quantization_config
    logger.info("the GGUF weights were dequantized on load, so they train as float tensors")


def _last_layers(model, count: int | None) -> list[int] | None:
    # Adapting only the last layers spares the backward pass through the
    # frozen ones below, which is most of its cost on a CPU.
    if not count:
        return None
    layers = model.config.num_hidden_layers
    if not 1 <= count <= layers:
        raise ValueError(f"--lora-layers must be between 1 and the model's {layers} layers, got {count}")
    return list(range(layers - count, layers))


def build_student(config: PointwiseTrainingConfig):
    """Load the student and wrap it for training: return (model, tokenizer, convention, head)."""
    from dear_ir.models import load_sequence_classifier, uses_dear_convention
    from dear_ir.pointwise import apply_dear_convention

    model, tokenizer = load_sequence_classifier(config.model)
    _forget_gguf_origin(model)
    convention = "dear" if uses_dear_convention(model) else "standard"
    if convention == "dear":
        apply_dear_convention(model, tokenizer)
    elif model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    head = head_name(model)

    if config.full:
        for parameter in model.parameters():
            parameter.requires_grad = True
    else:
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_targets_for(model, config.lora_targets),
            modules_to_save=[head],
            layers_to_transform=_last_layers(model, config.lora_layers),
        )
        model = get_peft_model(model, lora)

    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if not config.full:
            # Frozen embeddings give checkpointed blocks no input that needs a
            # gradient, which would leave the LoRA weights without one.
            model.enable_input_require_grads()

    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "student %s: %s, %s convention, head %r, %d of %d parameters trainable",
        config.model, "full fine-tuning" if config.full else "LoRA", convention, head, trainable, total,
    )
    return model, tokenizer, convention, head


# ---------------------------------------------------------------------------
# The trainer


def _make_trainer_class():
    import torch
    from transformers import Trainer, TrainerCallback

    from dear_ir.train.collate import additive_attention_mask
    from dear_ir.train.losses import total_loss

    class GroupTrainer(Trainer):
        """A Trainer whose loss is the DeAR group loss and whose head has its own learning rate."""

        def __init__(self, *args, loss_name, alpha, temperature, convention, head, head_learning_rate, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_name = loss_name
            self.alpha = alpha
            self.temperature = temperature
            self.convention = convention
            self.head = head
            self.head_learning_rate = head_learning_rate
            self._part_sums = {"main": 0.0, "kl": 0.0}
            self._part_count = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            model_inputs = dict(inputs["model_inputs"])
            teacher = inputs["teacher_logits"]
            if self.convention == "dear":
                dtype = next(model.parameters()).dtype
                model_inputs["attention_mask"] = additive_attention_mask(model_inputs["attention_mask"], dtype)

            logits = model(**model_inputs).logits
            scores = logits.float().view(teacher.shape)
            parts = total_loss(scores, teacher, main=self.loss_name, alpha=self.alpha, temperature=self.temperature)

            self._part_sums["main"] += parts["main"].item()
            self._part_sums["kl"] += parts["kl"].item()
            self._part_count += 1
            return (parts["loss"], {"scores": scores}) if return_outputs else parts["loss"]

        def log(self, logs, *args, **kwargs):
            if "loss" in logs and self._part_count:
                logs["main_loss"] = round(self._part_sums["main"] / self._part_count, 4)
                logs["kl"] = round(self._part_sums["kl"] / self._part_count, 4)
                self._part_sums = {"main": 0.0, "kl": 0.0}
                self._part_count = 0
            super().log(logs, *args, **kwargs)

        def create_optimizer(self, model=None):
            if self.optimizer is not None:
                return self.optimizer
            model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(model))
            groups = {}
            for name, parameter in model.named_parameters():
                if not parameter.requires_grad:
                    continue
                is_head = self.head in name.split(".")
                key = (is_head, name in decay)
                groups.setdefault(key, []).append(parameter)

            parameter_groups = []
            for (is_head, decays), parameters in sorted(groups.items()):
                group = {"params": parameters, "weight_decay": self.args.weight_decay if decays else 0.0}
                if is_head:
                    group["lr"] = self.head_learning_rate
                parameter_groups.append(group)
            head_count = sum(len(p) for (is_head, _), p in groups.items() if is_head)
            if not head_count:
                raise RuntimeError(f"no trainable parameter of the head {self.head!r} was found")

            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(parameter_groups, **optimizer_kwargs)
            return self.optimizer

    class TimeBudget(TrainerCallback):
        """Stops training, with a checkpoint, once the run has used its minutes."""

        def __init__(self, minutes: float):
            self.seconds = minutes * 60
            self.started = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() - self.started >= self.seconds:
                logger.warning("time budget of %.1f minutes used up at step %d; stopping", self.seconds / 60, state.global_step)
                control.should_training_stop = True
                control.should_save = True
            return control

    return GroupTrainer, TimeBudget


def bf16_arguments(setting: str) -> dict:
    """Return the TrainingArguments for --bf16: auto means a GPU with bfloat16; yes also accepts a bf16 CPU.

    Auto stays off on a CPU because autocast there changes the numerics that users
    compare against. With AVX512-BF16 or AMX, bf16 roughly doubles matrix-multiply
    speed (measured here: 406 against 184 GFLOP/s), so `--bf16 yes` enables it.
    The Trainer accepts bf16 on a CPU only with use_cpu set.
    """
    import torch

    on_gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if setting == "yes" and not (on_gpu or torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        raise ValueError("--bf16 yes is invalid here: no GPU or CPU with bfloat16 support was found; use --bf16 auto or no")
    bf16 = on_gpu if setting == "auto" else setting == "yes"
    return {"bf16": bf16, "use_cpu": bf16 and not on_gpu}


@dataclass
class TrainedStudent:
    """A finished training run: the output folder, and the model in memory unless it was skipped."""

    output: Path
    model: object = None
    tokenizer: object = None
    metadata: dict = field(default_factory=dict)


def train_pointwise(config: PointwiseTrainingConfig) -> TrainedStudent:
    """Train a student from teacher dumps and save it with its `dear_ir.json`."""
    import torch
    from transformers import TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from dear_ir.dump_teacher import read_dump
    from dear_ir.models import METADATA_FILE
    from dear_ir.train.collate import GroupCollator, standard_max_length
    from dear_ir.train.losses import MAIN_LOSSES

    output = Path(config.output)
    if (output / METADATA_FILE).is_file() and not config.overwrite:
        logger.info("%s already contains a trained student (dear_ir.json); pass --overwrite to train again", output)
        return TrainedStudent(output)
    if config.loss not in MAIN_LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose one of {', '.join(MAIN_LOSSES)}")

    teacher, groups = read_dump(config.teacher_logits)
    logger.info("read %d groups of %d passages from %s", len(groups), len(groups[0].docids), ", ".join(config.teacher_logits))
    if config.max_groups:
        groups = groups[: config.max_groups]
    if config.group_size:
        groups = shrink_groups(groups, config.group_size)
    if config.threads:
        torch.set_num_threads(config.threads)

    set_seed(config.seed)
    model, tokenizer, convention, head = build_student(config)
    if config.max_length:
        if convention == "dear":
            raise ValueError("--max-length applies to the standard convention only; DeAR fixes 32 + 193 tokens")
        # The scorer reads the limit from the saved tokenizer, so it cuts pairs as training did.
        tokenizer.model_max_length = config.max_length
    head_learning_rate = config.head_learning_rate or config.learning_rate * DEFAULT_HEAD_LEARNING_RATE_FACTOR

    checkpoints = output / "checkpoints"
    arguments = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.groups_per_step,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup,
        lr_scheduler_type="linear",
        max_grad_norm=config.max_grad_norm,
        **bf16_arguments(config.bf16),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        seed=config.seed,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not config.show_progress,
    )

    GroupTrainer, TimeBudget = _make_trainer_class()
    callbacks = [TimeBudget(config.max_minutes)] if config.max_minutes else []
    trainer = GroupTrainer(
        model=model,
        args=arguments,
        train_dataset=groups,
        data_collator=GroupCollator(tokenizer, convention),
        callbacks=callbacks,
        loss_name=config.loss,
        alpha=config.alpha,
        temperature=config.temperature,
        convention=convention,
        head=head,
        head_learning_rate=head_learning_rate,
    )

    started = time.monotonic()
    if config.max_steps == 0:
        # Zero steps saves the student as initialised: the untrained baseline
        # that a trained student is compared with.
        logger.info("--max-steps 0: saving the untrained student")
        training_loss = float("nan")
    else:
        last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
        if last:
            logger.info("resuming from %s", last)
        training_loss = trainer.train(resume_from_checkpoint=last).training_loss
    elapsed = time.monotonic() - started

    metadata = {}
    if trainer.is_world_process_zero():
        limits = (
            {"max_query_tokens": 32, "max_document_tokens": 193, "padded_length": 228}
            if convention == "dear"
            else {"max_length": standard_max_length(tokenizer)}
        )
        metadata = {
            "base_model": config.model,
            "convention": convention,
            **limits,
            "training": "full" if config.full else "lora",
            "head": head,
            "lora": None if config.full else {
                "r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                "targets": lora_targets_for(_unwrapped(model), config.lora_targets),
                "layers": _last_layers(_unwrapped(model), config.lora_layers),
            },
            "loss": {"main": config.loss, "alpha": config.alpha, "temperature": config.temperature},
            "teacher": teacher,
            "teacher_logits": [str(path) for path in config.teacher_logits],
            "groups": len(groups),
            "group_size": len(groups[0].docids),
            "steps": trainer.state.global_step,
            "epochs": round(trainer.state.epoch or 0.0, 3),
            "train_seconds": round(elapsed, 1),
            "train_loss": round(training_loss, 5) if math.isfinite(training_loss) else None,
            "settings": {k: v for k, v in asdict(config).items() if k not in ("overwrite", "show_progress")},
        }
        save_student(trainer.model, tokenizer, output, metadata, full=config.full)
    return TrainedStudent(output, trainer.model, tokenizer, metadata)


def shrink_groups(groups: list, group_size: int) -> list:
    """Keep the positive and the first `group_size - 1` negatives of every group.

    A dump lists each group's negatives in the random order they were drawn
    in, so the kept ones are a random subset of the dumped ones.
    """
    dumped = len(groups[0].docids)
    if not 2 <= group_size <= dumped:
        raise ValueError(f"--group-size must be between 2 and the dumped group size {dumped}, got {group_size}")
    return [
        replace(group, docids=group.docids[:group_size], texts=group.texts[:group_size], logits=group.logits[:group_size])
        for group in groups
    ]


def _unwrapped(model):
    from dear_ir.models import base_model

    return base_model(model)


def save_student(model, tokenizer, output: Path, metadata: dict, full: bool) -> None:
    """Save the adapter (or the full model), the tokenizer, then `dear_ir.json` last.

    `dear_ir.json` is written last and atomically, because its presence marks a
    finished student that a rerun skips.
    """
    from dear_ir.models import METADATA_FILE, save_plain_copy
    from dear_ir.runs import atomic_write_lines

    output.mkdir(parents=True, exist_ok=True)
    model.eval()
    if full:
        # save_plain_copy also rebuilds a model that is still flagged as GGUF, which save_pretrained rejects.
        save_plain_copy(model, tokenizer, output)
    else:
        model.peft_config["default"].base_model_name_or_path = metadata["base_model"]
        model.save_pretrained(output)
        tokenizer.save_pretrained(output)
    atomic_write_lines(output / METADATA_FILE, [json.dumps(metadata, indent=2, default=str) + "\n"])
    logger.info("saved the student to %s", output)


# ---------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher-logits", nargs="+", required=True, help="teacher dumps written by dear_ir.dump_teacher (one teacher, one group size)")
    parser.add_argument("--model", required=True, help="student base: a model alias, Hugging Face id, folder or GGUF file")
    parser.add_argument("--output", required=True, help="folder for the trained student and its checkpoints")

    loss = parser.add_argument_group("loss")
    loss.add_argument("--loss", default="hybrid", choices=["ce", "ranknet", "ranknet-teacher", "hybrid"], help="main ranking loss (default hybrid: 0.5 RankNet + 0.5 cross-entropy)")
    loss.add_argument("--alpha", type=float, default=0.1, help="weight of the KL term, within [0, 1]; 0 turns distillation off (default 0.1)")
    loss.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the KL term (default 2)")

    adapters = parser.add_argument_group("LoRA")
    adapters.add_argument("--full", action="store_true", help="train every weight instead of LoRA adapters")
    adapters.add_argument("--lora-r", type=int, default=32, help="LoRA rank (default 32)")
    adapters.add_argument("--lora-alpha", type=int, default=64, help="LoRA alpha (default 64)")
    adapters.add_argument("--lora-dropout", type=float, default=0.1, help="LoRA dropout (default 0.1)")
    adapters.add_argument("--lora-layers", type=int, default=None, help="adapt only the last N transformer layers, which shortens the backward pass (default: all layers)")
    adapters.add_argument("--lora-targets", nargs="+", default=None, help="module names LoRA adapts (default: q, v, o, gate, up, down projections for LLaMA; PEFT's choice otherwise)")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE, help="learning rate of the body (default 1e-4)")
    optimisation.add_argument("--head-learning-rate", type=float, default=None, help=f"learning rate of the classification head (default {DEFAULT_HEAD_LEARNING_RATE_FACTOR:g} times --learning-rate)")
    optimisation.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    optimisation.add_argument("--epochs", type=float, default=2.0, help="passes over the groups (default 2)")
    optimisation.add_argument("--max-steps", type=int, default=-1, help="optimizer steps; overrides --epochs when positive, and 0 saves the untrained student as a baseline")
    optimisation.add_argument("--max-minutes", type=float, default=None, help="stop, with a checkpoint, after this many minutes of training")
    optimisation.add_argument("--groups-per-step", type=int, default=16, help="query groups per device and forward pass (default 16)")
    optimisation.add_argument("--gradient-accumulation", type=int, default=1, help="forward passes per optimizer step (default 1)")
    optimisation.add_argument("--warmup", type=float, default=0.1, help="linear warmup: a share of all steps below 1, a step count from 1 (default 0.1)")
    optimisation.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm (default 1)")
    optimisation.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto", help="bfloat16 mixed precision (auto: on a GPU that supports it; yes: also on a CPU with bf16 instructions)")
    optimisation.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass to save memory")
    optimisation.add_argument("--seed", type=int, default=42, help="seed of initialisation and shuffling (default 42)")

    housekeeping = parser.add_argument_group("checkpoints and logging")
    housekeeping.add_argument("--save-steps", type=int, default=200, help="steps between checkpoints (default 200)")
    housekeeping.add_argument("--logging-steps", type=int, default=10, help="steps between loss logs (default 10)")
    optimisation.add_argument("--group-size", type=int, default=None, help="passages per group, the positive included: keeps the first negatives of each dumped group (default: as dumped)")
    optimisation.add_argument("--max-length", type=int, default=None, help="tokens per pair for students outside the DeAR convention (default: the tokenizer's limit, at most 512)")
    optimisation.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    housekeeping.add_argument("--max-groups", type=int, default=None, help="train on the first N groups only, for smoke tests")
    housekeeping.add_argument("--overwrite", action="store_true", help="train again even when OUTPUT contains a finished student")


def config_from_arguments(args: argparse.Namespace) -> PointwiseTrainingConfig:
    return PointwiseTrainingConfig(
        teacher_logits=list(args.teacher_logits), model=args.model, output=args.output,
        loss=args.loss, alpha=args.alpha, temperature=args.temperature,
        full=args.full, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets, lora_layers=args.lora_layers, learning_rate=args.learning_rate, head_learning_rate=args.head_learning_rate,
        weight_decay=args.weight_decay, epochs=args.epochs, max_steps=args.max_steps, max_minutes=args.max_minutes,
        groups_per_step=args.groups_per_step, gradient_accumulation=args.gradient_accumulation, warmup=args.warmup,
        max_grad_norm=args.max_grad_norm, bf16=args.bf16, gradient_checkpointing=args.gradient_checkpointing,
        save_steps=args.save_steps, logging_steps=args.logging_steps, seed=args.seed, max_groups=args.max_groups,
        group_size=args.group_size, max_length=args.max_length, threads=args.threads, overwrite=args.overwrite,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.train pointwise",
        description="Train a pointwise (DeAR-P) student from teacher-logit dumps.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be within [0, 1], got {args.alpha}")
    train_pointwise(config_from_arguments(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
