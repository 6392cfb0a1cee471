"""LR range test: a suggestion inside the range, and the model/optimizer left exactly as they were."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.optim import create_optimizer, lr_find


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(512, 1, generator=g)
    return x, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))


def _train(model, opt, x, y, steps, lr=None):
    if lr is not None:
        for g in opt.param_groups:
            g["lr"] = lr
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def test_suggestion_in_range_and_everything_restored():
    x, y = _data()
    model = _model()
    opt = create_optimizer(model, "adam", lr=1e-3)
    _train(model, opt, x, y, 3)  # non-empty optimizer state
    model.eval()
    weights = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)

    result = lr_find(model, opt, nn.functional.mse_loss, x, y, num_steps=80, end_lr=10.0)

    assert torch.equal(torch.rand(3), expected_draw)  # global RNG restored (dropout used it)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert [g["lr"] for g in opt.param_groups] == [1e-3] * len(opt.param_groups)
    for idx, st in opt.state_dict()["state"].items():
        for key, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_state["state"][idx][key])), key
    assert 1e-7 <= result.suggestion <= 10.0
    assert result.diverged and len(result.lrs) < 80  # stopped when the loss blew up
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses)
    assert result.lrs[0] == pytest.approx(1e-7)
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))


def test_suggested_lr_trains_better_than_a_tiny_one():
    x, y = _data()
    model = _model()
    opt = create_optimizer(model, "sgd")
    suggestion = lr_find(model, opt, nn.functional.mse_loss, x, y, num_steps=100).suggestion
    assert 1e-3 < suggestion < 2.0
    start = copy.deepcopy(model.state_dict())
    good = _train(model, opt, x, y, 60, lr=suggestion)
    model.load_state_dict(start)
    model.train()
    tiny = _train(model, create_optimizer(model, "sgd"), x, y, 60, lr=1e-5)
    assert good < 0.5 * tiny


def test_layer_decay_ratios_kept_and_lbfgs_closure_works():
    x, y = _data()
    model = _model()
    opt = create_optimizer(model, "sgd", lr=0.1, layer_decay=0.5)
    seen = []

    def loss_fn(out, target):
        seen.append(sorted({g["lr"] for g in opt.param_groups}))
        return nn.functional.mse_loss(out, target)

    lr_find(model, opt, loss_fn, x, y, num_steps=10, end_lr=1.0)
    top = [lrs[-1] for lrs in seen]
    assert all(lrs == pytest.approx([t / 2, t]) for lrs, t in zip(seen, top))  # two Linear layers
    lbfgs = create_optimizer(model, "lbfgs", max_iter=2)
    result = lr_find(model, lbfgs, nn.functional.mse_loss, x, y, start_lr=1e-4, end_lr=1.0, num_steps=5)
    assert len(result.lrs) >= 1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"start_lr": 0.0}, "invalid start_lr: got 0.0"),
        ({"end_lr": 1e-8}, "invalid end_lr: got 1e-08"),
        ({"num_steps": 1}, "invalid num_steps: got 1"),
        ({"smooth": 1.0}, "invalid smooth: got 1.0"),
        ({"diverge_factor": 1.0}, "invalid diverge_factor: got 1.0"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    x, y = _data()
    model = _model()
    with pytest.raises(ConfigError, match=pattern):
        lr_find(model, create_optimizer(model, "sgd"), nn.functional.mse_loss, x, y, **kwargs)
