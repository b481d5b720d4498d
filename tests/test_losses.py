"""Losses of DeAR-P training checked against values worked out by hand."""

import math

import pytest
import torch

from dear_ir.train import losses


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def soft_bce(logit, target):
    """Binary cross-entropy with logits for one pair, written out."""
    return -(target * math.log(sigmoid(logit)) + (1 - target) * math.log(1 - sigmoid(logit)))


def test_cross_entropy_two_passages():
    # softmax([2, 0])[0] = e^2 / (e^2 + 1), so the loss is log(1 + e^-2).
    value = losses.group_cross_entropy(torch.tensor([[2.0, 0.0]]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_cross_entropy_batch_mean():
    scores = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, math.log(2.0)]])
    # Group 1: uniform over 3, loss log 3. Group 2: p0 = 1 / (1 + 1 + 2), loss log 4.
    expected = (math.log(3) + math.log(4)) / 2
    assert losses.group_cross_entropy(scores).item() == pytest.approx(expected, rel=1e-6)


def test_ranknet_binary_labels():
    scores = torch.tensor([[2.0, 0.0, 1.0]])
    labels = losses.binary_relevance(scores)
    assert labels.tolist() == [[1.0, 0.0, 0.0]]

    # Pairs (0,1) and (0,2) have target sigmoid(1), and pair (1,2) has sigmoid(0) = 0.5.
    expected = (
        soft_bce(2.0 - 0.0, sigmoid(1))
        + soft_bce(2.0 - 1.0, sigmoid(1))
        + soft_bce(0.0 - 1.0, 0.5)
    ) / 3
    assert losses.ranknet(scores, labels).item() == pytest.approx(expected, rel=1e-6)


def test_ranknet_teacher_soft_targets():
    scores = torch.tensor([[0.5, -0.5], [1.0, 3.0]])
    teacher = torch.tensor([[4.0, 1.0], [0.0, 2.0]])
    expected = (soft_bce(1.0, sigmoid(3.0)) + soft_bce(-2.0, sigmoid(-2.0))) / 2
    assert losses.ranknet(scores, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_ranknet_target_carries_no_gradient():
    scores = torch.tensor([[0.3, 0.1]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0]], requires_grad=True)
    losses.ranknet(scores, teacher).backward()
    assert scores.grad is not None
    assert teacher.grad is None


def test_ranknet_minimum_at_teacher_margin():
    # BCE with a soft target is smallest where sigmoid(margin) equals the target,
    # so the gradient vanishes when the student copies the teacher's margin.
    scores = torch.tensor([[1.5, 0.0]], requires_grad=True)
    losses.ranknet(scores, torch.tensor([[2.5, 1.0]])).backward()
    assert scores.grad.abs().max().item() < 1e-6


def test_hybrid_is_half_and_half():
    scores = torch.tensor([[2.0, 0.0, 1.0]])
    labels = losses.binary_relevance(scores)
    ranknet_value = losses.ranknet(scores, labels).item()
    ce_value = losses.group_cross_entropy(scores).item()
    assert losses.hybrid(scores, labels).item() == pytest.approx(
        0.5 * ranknet_value + 0.5 * ce_value, rel=1e-6
    )


def test_kl_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    temperature = 2.0
    # At T = 2 the teacher gives softmax([1, 0]) and the student gives the uniform distribution.
    p = [sigmoid(1.0), 1 - sigmoid(1.0)]
    q = [0.5, 0.5]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    value = losses.distillation_kl(student, teacher, temperature)
    assert value.item() == pytest.approx(temperature**2 * kl, rel=1e-6)


def test_kl_batch_mean_and_zero():
    teacher = torch.tensor([[3.0, 1.0, -1.0], [0.0, 0.0, 0.0]])
    assert losses.distillation_kl(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-7)

    student = torch.tensor([[3.0, 1.0, -1.0], [1.0, 0.0, 0.0]])
    # Only group 2 differs: KL(uniform || softmax([0.5, 0, 0])), times T^2 = 4, over 2 groups.
    q = torch.softmax(torch.tensor([0.5, 0.0, 0.0]), dim=0).tolist()
    kl = sum((1 / 3) * math.log((1 / 3) / qi) for qi in q)
    assert losses.distillation_kl(student, teacher, 2.0).item() == pytest.approx(4 * kl / 2, rel=1e-5)


def test_total_loss_weights():
    student = torch.tensor([[1.0, 0.0, -1.0]])
    teacher = torch.tensor([[0.0, 2.0, 1.0]])
    parts = losses.total_loss(student, teacher, main="ce", alpha=0.1, temperature=2.0)
    ce = losses.group_cross_entropy(student).item()
    kl = losses.distillation_kl(student, teacher, 2.0).item()
    assert parts["main"].item() == pytest.approx(ce, rel=1e-6)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(0.9 * ce + 0.1 * kl, rel=1e-6)


def test_total_loss_defaults():
    assert losses.DEFAULT_ALPHA == 0.1
    assert losses.DEFAULT_TEMPERATURE == 2.0
    student = torch.tensor([[0.2, 0.1]])
    teacher = torch.tensor([[1.0, 0.0]])
    parts = losses.total_loss(student, teacher)
    expected = 0.9 * losses.hybrid(student, losses.binary_relevance(student)).item() + 0.1 * (
        losses.distillation_kl(student, teacher, 2.0).item()
    )
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_total_loss_alpha_zero_skips_kl():
    student = torch.tensor([[0.2, 0.1]])
    parts = losses.total_loss(student, torch.full((1, 2), float("nan")), main="ce", alpha=0.0)
    assert parts["kl"].item() == 0.0
    assert not math.isnan(parts["loss"].item())


@pytest.mark.parametrize("main", sorted(losses.MAIN_LOSSES))
def test_every_main_loss_prefers_positive_first(main):
    teacher = torch.tensor([[3.0, 0.0, 1.0]])
    right = losses.total_loss(torch.tensor([[3.0, 0.0, 1.0]]), teacher, main=main)["loss"]
    wrong = losses.total_loss(torch.tensor([[0.0, 3.0, 1.0]]), teacher, main=main)["loss"]
    assert right.item() < wrong.item()


def test_invalid_arguments():
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown main loss"):
        losses.total_loss(scores, scores, main="listnet")
    with pytest.raises(ValueError, match="alpha"):
        losses.total_loss(scores, scores, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        losses.distillation_kl(scores, scores, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        losses.group_cross_entropy(torch.zeros(3))
    with pytest.raises(ValueError, match="differs"):
        losses.ranknet(scores, torch.zeros(2, 4))
