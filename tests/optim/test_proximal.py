"""Proximal gradient: matches sklearn's Lasso exactly in support; group lasso zeros whole rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler
from torch import nn

from honing.optim import ProximalGradient, create_optimizer
from honing.optim._proximal import group_soft_threshold_, soft_threshold_

ALPHA = 0.05


def _lasso_data(offset: float = 0.0):
    x, y = make_regression(n_samples=200, n_features=20, n_informative=5, noise=5.0, random_state=0)
    x = StandardScaler().fit_transform(x)
    y = (y - y.mean()) / y.std() + offset
    return x, y


def _lipschitz(x: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(x.T @ x / len(x)).max())


def test_l1_matches_sklearn_lasso_with_exact_zeros():
    x, y = _lasso_data()
    reference = Lasso(alpha=ALPHA, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(x, y).coef_
    xt, yt = torch.tensor(x), torch.tensor(y)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    # sklearn minimises 1/(2n)||y - Xw||^2 + alpha ||w||_1: loss 0.5 * mse, lam = alpha, ISTA step 1/L.
    opt = ProximalGradient([w], lr=1 / _lipschitz(x), lam=ALPHA)
    for _ in range(1500):
        opt.zero_grad()
        (0.5 * torch.mean((yt - xt @ w) ** 2)).backward()
        opt.step()
    got = w.detach().numpy()
    assert 5 <= (reference == 0).sum() < len(reference)  # a real sparse problem
    np.testing.assert_array_equal(got == 0, reference == 0)
    np.testing.assert_allclose(got, reference, atol=1e-8)
    assert opt.sparsity() == pytest.approx((reference == 0).mean())


def test_model_with_unpenalised_bias_matches_lasso_with_intercept():
    x, y = _lasso_data(offset=3.0)
    ref = Lasso(alpha=ALPHA, fit_intercept=True, tol=1e-12, max_iter=100_000).fit(x, y)
    model = nn.Linear(x.shape[1], 1).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = create_optimizer(model, "proximal", lr=1 / _lipschitz(x), lam=ALPHA)
    assert [g["penalize"] for g in opt.param_groups] == [True, False]  # bias group unpenalised
    xt, yt = torch.tensor(x), torch.tensor(y)[:, None]
    for _ in range(1500):
        opt.zero_grad()
        (0.5 * nn.functional.mse_loss(model(xt), yt)).backward()
        opt.step()
    got = model.weight.detach().numpy()[0]
    np.testing.assert_array_equal(got == 0, ref.coef_ == 0)
    np.testing.assert_allclose(got, ref.coef_, atol=1e-7)
    assert model.bias.item() == pytest.approx(ref.intercept_, abs=1e-7)


@pytest.mark.parametrize("base_kwargs", [{"base": "sgd", "momentum": 0.9}, {"base": "adam"}])
def test_momentum_and_adam_bases_reach_the_lasso_solution(base_kwargs):
    # The prox is taken in the base step's metric, so the fixed point is the lasso solution.
    x, y = _lasso_data()
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    w = torch.zeros(x.shape[1], requires_grad=True)
    lr = 0.05 if base_kwargs["base"] == "sgd" else 0.01
    opt = ProximalGradient([w], lr=lr, lam=ALPHA, **base_kwargs)
    for _ in range(600):
        opt.zero_grad()
        (0.5 * torch.mean((yt - xt @ w) ** 2)).backward()
        opt.step()
    reference = Lasso(alpha=ALPHA, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(x, y).coef_
    got = w.detach().numpy()
    np.testing.assert_array_equal(got == 0, reference == 0)
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_soft_threshold_operator():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5])
    soft_threshold_(w, 0.5)
    assert torch.equal(w, torch.tensor([-1.5, 0.0, 0.0, 0.0, 1.0]))


def test_group_soft_threshold_scales_or_zeros_whole_rows():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])  # row norms 5, 0.5, 0
    group_soft_threshold_(w, 1.0 / 2**0.5)  # threshold 1 per row of size 2
    assert torch.allclose(w[0], torch.tensor([3.0, 4.0]) * 0.8)
    assert torch.equal(w[1:], torch.zeros(2, 2))


def test_group_lasso_zeros_whole_rows_of_a_network():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2]
    model = nn.Sequential(nn.Linear(10, 24), nn.Tanh(), nn.Linear(24, 1))
    opt = create_optimizer(model, "proximal", lr=0.1, lam=0.01, penalty="group_lasso", momentum=0.9)
    for _ in range(400):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    w = model[0].weight.detach()  # (24, 10): one group per hidden unit
    zero_rows = (w == 0).all(dim=1)
    assert 0 < int(zero_rows.sum()) < 24
    assert not (w[~zero_rows] == 0).any()  # kept rows stay dense: zeros only come row-wise
    assert (model[0].bias != 0).all()  # biases unpenalised
    assert nn.functional.mse_loss(model(x), y).item() < 0.1 * y.var().item() + 0.05


def test_penalize_flag_per_group_and_l1_alias():
    a = nn.Parameter(torch.full((4,), 0.01))
    b = nn.Parameter(torch.full((4,), 0.01))
    opt = ProximalGradient([{"params": [a]}, {"params": [b], "penalize": False}], lr=1.0, l1=0.1)
    (a.sum() * 0 + b.sum() * 0).backward()
    opt.step()
    assert torch.equal(a.detach(), torch.zeros(4))
    assert torch.equal(b.detach(), torch.full((4,), 0.01))
