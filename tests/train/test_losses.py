from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from honing._core import ConfigError, UnknownNameError
from honing.train import LOSSES, create_loss, list_losses


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(16, 5, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(1))


def _nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[label], per sample, by hand."""
    logp = logits - logits.exp().sum(dim=1, keepdim=True).log()
    return -logp[torch.arange(len(labels)), labels]


def test_list_losses_has_the_registered_names():
    assert set(list_losses()) == {"mse", "mae", "huber", "cross_entropy", "bce", "focal"}
    assert list_losses() == LOSSES.names()


def test_regression_losses_match_hand_computation():
    pred = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    target = torch.tensor([[0.0, 2.0], [1.0, 2.0]])
    # differences: [[1, 0], [2, -3]]
    assert create_loss("mse")(pred, target).item() == pytest.approx((1 + 0 + 4 + 9) / 4)
    assert create_loss("mae")(pred, target).item() == pytest.approx((1 + 0 + 2 + 3) / 4)
    # huber with delta=1.5: 0.5 d^2 if |d| <= 1.5 else 1.5 (|d| - 0.75)
    expected = [0.5 * 1, 0.0, 1.5 * (2 - 0.75), 1.5 * (3 - 0.75)]
    assert create_loss("huber", delta=1.5)(pred, target).item() == pytest.approx(sum(expected) / 4)


@pytest.mark.parametrize("name", ["mse", "mae", "huber"])
def test_regression_losses_reject_shape_mismatch_instead_of_broadcasting(name):
    pred = torch.zeros(8, 1)
    target = torch.zeros(8)
    with pytest.raises(ConfigError, match=r"prediction shape \(8, 1\) does not match target shape \(8,\)"):
        create_loss(name)(pred, target)


def test_cross_entropy_matches_hand_computation(logits, labels):
    assert create_loss("cross_entropy")(logits, labels).item() == pytest.approx(_nll(logits, labels).mean().item(), rel=1e-6)


def test_cross_entropy_label_smoothing_matches_hand_computation(logits, labels):
    eps, c = 0.2, logits.shape[1]
    logp = torch.log_softmax(logits, dim=1)
    # smoothed target: (1 - eps) one-hot + eps / C uniform
    expected = ((1 - eps) * _nll(logits, labels) + eps * (-logp).sum(dim=1) / c).mean()
    got = create_loss("cross_entropy", label_smoothing=eps)(logits, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_class_weights_give_a_weighted_mean(logits, labels):
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])
    expected = (w[labels] * _nll(logits, labels)).sum() / w[labels].sum()
    got = create_loss("cross_entropy", weight=[1.0, 2.0, 0.5, 3.0, 1.0])(logits, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_accepts_soft_targets(logits, labels):
    loss = create_loss("cross_entropy")
    onehot = F.one_hot(labels, 5).float()
    assert loss(logits, onehot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    # a mixup-style target: a convex combination of two one-hots
    other = labels.roll(1)
    soft = 0.7 * onehot + 0.3 * F.one_hot(other, 5).float()
    expected = 0.7 * _nll(logits, labels) + 0.3 * _nll(logits, other)
    assert loss(logits, soft).item() == pytest.approx(expected.mean().item(), rel=1e-6)


def test_cross_entropy_rejects_float_targets_of_the_wrong_shape(logits):
    with pytest.raises(ConfigError, match="class probabilities"):
        create_loss("cross_entropy")(logits, torch.zeros(16))


def test_bce_on_logits_with_flat_column_and_int_targets():
    z = torch.tensor([0.5, -1.0, 2.0, 0.0])
    t = torch.tensor([1.0, 0.0, 0.0, 1.0])
    p = torch.sigmoid(z)
    expected = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    loss = create_loss("bce")
    assert loss(z, t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(z.unsqueeze(1), t).item() == pytest.approx(expected.item(), rel=1e-6)  # (N, 1) vs (N,)
    assert loss(z.unsqueeze(1), t.long()).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError, match="binary logits"):
        loss(torch.zeros(4, 2), t)


def test_focal_with_gamma_zero_equals_cross_entropy(logits, labels):
    focal = create_loss("focal", gamma=0.0)
    assert focal(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    soft = torch.softmax(torch.randn(16, 5), dim=1)
    assert focal(logits, soft).item() == pytest.approx(F.cross_entropy(logits, soft).item(), rel=1e-6)


def test_focal_multiclass_matches_hand_computation(logits, labels):
    gamma, alpha = 2.0, torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2])
    p_t = torch.softmax(logits, dim=1)[torch.arange(16), labels]
    expected = (-alpha[labels] * (1 - p_t) ** gamma * p_t.log()).mean()
    got = create_loss("focal", gamma=gamma, alpha=alpha.tolist())(logits, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # easy examples count less than in cross-entropy
    assert create_loss("focal")(logits, labels).item() < F.cross_entropy(logits, labels).item()


def test_focal_binary_matches_hand_computation():
    z = torch.tensor([2.0, -0.5, 0.3, -3.0])
    t = torch.tensor([1.0, 1.0, 0.0, 0.0])
    bce = create_loss("bce")(z, t).item()
    assert create_loss("focal", gamma=0.0)(z, t).item() == pytest.approx(bce, rel=1e-6)
    p = torch.sigmoid(z)
    p_t = torch.where(t == 1, p, 1 - p)
    a_t = torch.where(t == 1, torch.tensor(0.25), torch.tensor(0.75))
    expected = (-a_t * (1 - p_t) ** 2 * p_t.log()).mean()
    got = create_loss("focal", gamma=2.0, alpha=0.25)(z.unsqueeze(1), t)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_scalar_alpha_needs_binary_logits(logits, labels):
    with pytest.raises(ConfigError, match="per-class weights"):
        create_loss("focal", alpha=0.25)(logits, labels)


def test_create_loss_passes_callables_through_and_validates_options():
    def my_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().sum()

    assert create_loss(my_loss) is my_loss
    with pytest.raises(ConfigError, match="only apply to a loss given by name"):
        create_loss(my_loss, delta=1.0)
    with pytest.raises(UnknownNameError, match="Did you mean 'cross_entropy'"):
        create_loss("cross_entropyy")
    with pytest.raises(ConfigError, match=r"invalid option\(s\) \['gama'\] for loss 'focal'; allowed: gamma, alpha"):
        create_loss("focal", gama=2.0)
    with pytest.raises(ConfigError, match="invalid label_smoothing in cross_entropy loss: got 1.5"):
        create_loss("cross_entropy", label_smoothing=1.5)
    with pytest.raises(ConfigError, match="invalid weight"):
        create_loss("cross_entropy", weight=[1.0, -1.0])
    with pytest.raises(ConfigError, match="invalid delta"):
        create_loss("huber", delta=0)
    with pytest.raises(ConfigError, match="invalid loss"):
        create_loss(42)  # type: ignore[arg-type]
    assert math.isclose(create_loss("CE")(torch.zeros(2, 2), torch.tensor([0, 1])).item(), math.log(2), rel_tol=1e-6)
