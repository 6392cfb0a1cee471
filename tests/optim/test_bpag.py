"""BPAG: gains split into their own group with their own lr and momentum; gains learn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from honing.optim import BPAG, create_optimizer


def _fit(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def test_gains_get_their_own_group_lr_and_momentum(gain_mlp_cls):
    model = gain_mlp_cls()
    opt = create_optimizer(model, "bpag", lr=0.05, momentum=0.8, gain_lr=0.01, gain_momentum=0.5, weight_decay=1e-3)
    gains = opt.gain_groups()
    assert len(gains) == 1 and gains[0]["param_names"] == ["hidden_gain"]
    assert gains[0]["lr"] == 0.01 and gains[0]["momentum"] == 0.5 and gains[0]["weight_decay"] == 0.0
    weights = [g for g in opt.param_groups if not g["gain"]]
    assert all(g["lr"] == 0.05 and g["momentum"] == 0.8 for g in weights)
    assert "fc1.weight" in weights[0]["param_names"] and weights[0]["weight_decay"] == 1e-3
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_gains_change_and_model_learns(gain_mlp_cls, regression):
    x, y = regression
    model = gain_mlp_cls()
    opt = create_optimizer(model, "bpag", lr=0.05, gain_lr=0.05)
    with torch.no_grad():
        before = nn.functional.mse_loss(model(x), y).item()
    after = _fit(model, opt, x, y, 100)
    assert after < 0.3 * before
    assert not torch.allclose(model.hidden_gain, torch.ones(16))


def test_gain_lr_zero_freezes_gains_only(gain_mlp_cls, regression):
    x, y = regression
    model = gain_mlp_cls()
    w0 = model.fc1.weight.detach().clone()
    opt = BPAG(model.named_parameters(), lr=0.05, gain_lr=0.0)
    _fit(model, opt, x, y, 10)
    assert torch.equal(model.hidden_gain.detach(), torch.ones(16))
    assert not torch.equal(model.fc1.weight.detach(), w0)


def test_classic_momentum_update_rule():
    w = nn.Parameter(torch.tensor([1.0]))
    opt = BPAG([w], lr=0.1, momentum=0.5)
    deltas = []
    for _ in range(3):
        w.grad = torch.tensor([2.0])
        before = w.item()
        opt.step()
        deltas.append(w.item() - before)
    # delta(t) = -lr * g + momentum * delta(t-1)
    assert deltas == pytest.approx([-0.2, -0.3, -0.35])


def test_layer_decay_scales_gain_lr_like_its_layer(gain_mlp_cls):
    model = gain_mlp_cls()
    opt = create_optimizer(model, "bpag", lr=0.1, gain_lr=0.02, layer_decay=0.5)
    (gain_group,) = opt.gain_groups()
    assert gain_group["lr"] == pytest.approx(0.02 * 0.25)  # layer 0 of 3


def test_flagged_gain_group_for_plain_tensors():
    w, c = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))
    opt = BPAG([{"params": [w]}, {"params": [c], "gain": True}], lr=0.1, gain_lr=0.3)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]
