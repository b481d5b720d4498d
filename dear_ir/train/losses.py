"""Ranking and distillation losses of DeAR-P training, as pure torch functions.

Every function takes a query group of scores, shape ``(batch, group)``, where
column 0 is the positive passage and the other columns are negatives. The
total loss of one step is

    (1 - alpha) * main + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))

with student scores s, teacher logits t and temperature T. DeAR's training
scripts use alpha = 0.1 and T = 2.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

DEFAULT_ALPHA = 0.1
DEFAULT_TEMPERATURE = 2.0

# Weight of RankNet in the hybrid loss. The rest goes to the group cross-entropy.
HYBRID_RANKNET_WEIGHT = 0.5


def _check_group(scores: torch.Tensor, name: str = "scores") -> None:
    if scores.dim() != 2 or scores.size(1) < 2:
        raise ValueError(
            f"{name} must have shape (batch, group) with a group of at least 2 passages, "
            f"got shape {tuple(scores.shape)}"
        )


def binary_relevance(scores: torch.Tensor) -> torch.Tensor:
    """Return labels shaped like `scores`: 1 for the positive in column 0, 0 elsewhere."""
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    return labels


def group_cross_entropy(scores: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over each group with the positive at index 0, mean over groups."""
    _check_group(scores)
    target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores, target)


def ranknet(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """RankNet with soft targets, mean over all pairs i < j of every group.

    Each pair is a binary cross-entropy on the logit ``s_i - s_j`` whose target
    is ``sigmoid(y_i - y_j)`` for the relevance `y` (binary labels or teacher
    logits). A soft target keeps the teacher's margins: a pair the teacher
    barely separates pulls the student only a little. Pairs of two negatives
    with binary labels get the target 0.5, which pulls their scores together.
    """
    _check_group(scores)
    if relevance.shape != scores.shape:
        raise ValueError(
            f"relevance shape {tuple(relevance.shape)} differs from scores shape {tuple(scores.shape)}"
        )

    group = scores.size(1)
    first, second = torch.triu_indices(group, group, offset=1, device=scores.device)
    score_margins = scores[:, first] - scores[:, second]
    relevance = relevance.detach().to(scores.dtype)
    targets = torch.sigmoid(relevance[:, first] - relevance[:, second])
    return F.binary_cross_entropy_with_logits(score_margins, targets)


def hybrid(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """Return ``0.5 * RankNet + 0.5 * group cross-entropy``."""
    return HYBRID_RANKNET_WEIGHT * ranknet(scores, relevance) + (
        1.0 - HYBRID_RANKNET_WEIGHT
    ) * group_cross_entropy(scores)


def distillation_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Return ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, mean over groups.

    Dividing by T shrinks the gradient of the KL by about 1/T^2, so the factor
    T^2 keeps its weight against the main loss roughly independent of T.
    """
    _check_group(student, "student scores")
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher logits shape {tuple(teacher.shape)} differs from student shape {tuple(student.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")

    student_log_probs = F.log_softmax(student / temperature, dim=1)
    teacher_log_probs = F.log_softmax(teacher.detach().to(student.dtype) / temperature, dim=1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def _cross_entropy_main(scores: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return group_cross_entropy(scores)


def _ranknet_binary_main(scores: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return ranknet(scores, binary_relevance(scores))


def _ranknet_teacher_main(scores: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return ranknet(scores, teacher)


def _hybrid_main(scores: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return hybrid(scores, binary_relevance(scores))


# The main ranking losses by their command-line name. Each takes the student
# scores and the teacher logits, both (batch, group). DeAR calls them
# softmax_ce, ranknet_binary, ranknet_teacher and ranknet_binary_softmax_ce.
MAIN_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": _cross_entropy_main,
    "ranknet": _ranknet_binary_main,
    "ranknet-teacher": _ranknet_teacher_main,
    "hybrid": _hybrid_main,
}


def total_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    main: str = "hybrid",
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """Return the training loss ``(1 - alpha) * main + alpha * KL`` and its two parts.

    The result maps "loss" to the total and "main" and "kl" to the parts, so
    that training can log each. With alpha 0 the KL term is neither computed
    nor added, and "kl" is zero.
    """
    if main not in MAIN_LOSSES:
        raise ValueError(f"unknown main loss {main!r}; choose one of {', '.join(MAIN_LOSSES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")

    main_value = MAIN_LOSSES[main](student, teacher)
    if alpha == 0.0:
        kl_value = torch.zeros((), dtype=main_value.dtype, device=main_value.device)
    else:
        kl_value = distillation_kl(student, teacher, temperature)
    loss = (1.0 - alpha) * main_value + alpha * kl_value
    return {"loss": loss, "main": main_value.detach(), "kl": kl_value.detach()}
