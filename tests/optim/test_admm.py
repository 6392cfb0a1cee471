"""ADMM: at most k non-zeros per constrained layer after finalize, residuals logged and shrinking."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.optim import ADMM, create_optimizer
from honing.optim._admm import topk_mask


def _problem():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2] - 0.3 * x[:, 2:3]
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    return model, x, y


def _fit(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def test_finalize_leaves_at_most_k_nonzeros_and_model_still_fits():
    model, x, y = _problem()
    opt = create_optimizer(model, "admm", lr=1e-2, k=20, rho=1e-2, rho_growth=1.3, admm_interval=20)
    assert [g["constrain"] for g in opt.param_groups] == [None, False]  # biases not constrained
    _fit(model, opt, x, y, 600)
    masks = opt.finalize()
    assert set(masks) == {"0.weight", "2.weight"}
    assert int((model[0].weight != 0).sum()) <= 20 and int((model[2].weight != 0).sum()) <= 20
    assert int(masks["0.weight"].sum()) == 20 and masks["0.weight"].dtype == torch.bool
    assert torch.equal(model[0].weight != 0, masks["0.weight"] & (model[0].weight != 0))
    assert (model[0].bias != 0).all()  # unconstrained
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(x), y).item()
    assert loss < 0.1 * y.var().item()  # still fits after the hard projection

    # residuals: one record per Z-step, primal residual shrinks as W is pulled onto the constraint set
    assert [r["step"] for r in opt.residuals] == list(range(20, 601, 20))
    assert set(opt.residuals[0]) == {"step", "primal", "dual", "rho"}
    assert opt.residuals[-1]["primal"] < 0.1 * opt.residuals[0]["primal"]
    assert opt.residuals[-1]["rho"] > opt.residuals[0]["rho"]

    # masked retraining after finalize keeps pruned weights at zero
    retrained = _fit(model, opt, x, y, 50)
    assert int((model[0].weight != 0).sum()) <= 20
    assert retrained <= loss + 1e-6


def test_sparsity_fraction_per_tensor_and_fixed_rho_still_reduces_primal():
    model, x, y = _problem()
    opt = create_optimizer(model, "admm", lr=1e-2, sparsity=0.8, rho=1e-2, admm_interval=20)
    _fit(model, opt, x, y, 400)
    primal = [r["primal"] for r in opt.residuals]
    assert primal[-1] < primal[0]
    opt.finalize()
    assert int((model[0].weight != 0).sum()) <= round(0.2 * 256)
    assert int((model[2].weight != 0).sum()) <= round(0.2 * 32)


def test_state_dict_holds_z_u_and_residuals():
    model, x, y = _problem()
    opt = create_optimizer(model, "admm", lr=1e-2, k=10, admm_interval=3, base="sgd", momentum=0.9)
    _fit(model, opt, x, y, 7)
    sd = opt.state_dict()
    w_state = sd["state"][0]
    assert {"Z", "U", "step"} <= set(w_state) and w_state["Z"].shape == (32, 8)
    assert int((w_state["Z"] != 0).sum()) <= 10
    assert len(sd["residuals"]) == 2
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    other = create_optimizer(model, "admm", lr=1e-2, k=10, base="sgd", momentum=0.9)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.residuals == opt.residuals
    assert torch.equal(other.state[model[0].weight]["U"], opt.state[model[0].weight]["U"])


def test_finalized_state_round_trips_masks():
    model, x, y = _problem()
    opt = create_optimizer(model, "admm", k=5)
    _fit(model, opt, x, y, 3)
    opt.finalize()
    other = create_optimizer(model, "admm", k=5)
    other.load_state_dict(opt.state_dict())
    assert other.finalized and other.state[model[0].weight]["mask"].dtype == torch.bool
    _fit(model, other, x, y, 5)
    assert int((model[0].weight != 0).sum()) <= 5


def test_param_group_flag_and_param_list_defaults():
    w = nn.Parameter(torch.randn(6, 6))
    v = nn.Parameter(torch.randn(10))
    u = nn.Parameter(torch.randn(10))
    opt = ADMM([{"params": [w, v]}, {"params": [u], "constrain": True, "k": 2}], lr=1e-2, sparsity=8 / 9)
    for p in (w, v, u):
        p.grad = torch.zeros_like(p)
    opt.step()
    masks = opt.finalize()
    assert set(masks) == {"0.0", "1.0"}  # 1-D v unconstrained by default; u flagged
    assert int((w != 0).sum()) == 4 and int((u != 0).sum()) == 2 and int((v != 0).sum()) == 10


def test_topk_mask_keeps_exactly_k_largest_magnitudes():
    x = torch.tensor([[0.1, -5.0], [3.0, -0.2]])
    assert torch.equal(topk_mask(x, 2), torch.tensor([[False, True], [True, False]]))
    assert int(topk_mask(x, 0).sum()) == 0 and int(topk_mask(x, 10).sum()) == 4


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sparsity": 1.5}, r"invalid sparsity in optimizer 'admm': got 1.5; allowed: a number in \[0.0, 1.0\)"),
        ({"k": -1}, r"invalid k in optimizer 'admm': got -1; allowed: an integer >= 0"),
        ({"k": 2.5}, r"invalid k .*got 2.5"),
        ({}, r"give k .* or sparsity"),
        ({"k": 2, "rho_growth": 0.5}, r"invalid rho_growth .*got 0.5"),
    ],
)
def test_bad_constraints_raise(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        create_optimizer(nn.Linear(4, 2), "admm", **kwargs)
