"""Registry-driven conformance of every optimizer in ``list_optimizers()``, plus factory errors."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from honing._core import ConfigError, UnknownNameError
from honing.optim import (
    ADMM,
    BPAG,
    OPTIMIZERS,
    ProximalGradient,
    create_optimizer,
    get_optimizer_info,
    list_optimizers,
)

# Extra arguments some optimizers need on this tiny problem (defaults otherwise).
TEST_KWARGS = {"admm": {"sparsity": 0.5, "admm_interval": 5, "lr": 1e-2}, "adam": {"lr": 1e-2}, "adamw": {"lr": 1e-2},
               "sgd": {"lr": 0.05}, "adagrad": {"lr": 0.1}, "proximal": {"lam": 1e-3, "lr": 0.05}}
STEPS = 30


def _closure(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    return closure


def _train(model, opt, x, y, steps: int) -> list[float]:
    losses = []
    closure = _closure(model, opt, x, y)
    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return losses


def _loss(model, x, y) -> float:
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x), y))


def test_registry_lists_all_required_names():
    required = {"sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "adadelta", "rmsprop", "lbfgs",
                "proximal", "admm", "bpag"}
    assert required <= set(list_optimizers())
    assert list_optimizers() == OPTIMIZERS.names()


@pytest.mark.parametrize("name", list_optimizers())
@pytest.mark.parametrize("source", ["model", "params"])
def test_reduces_loss(name, source, regression, mlp_factory):
    x, y = regression
    model = mlp_factory()
    target = model if source == "model" else list(model.parameters())
    opt = create_optimizer(target, name, **TEST_KWARGS.get(name, {}))
    assert isinstance(opt, torch.optim.Optimizer)
    before = _loss(model, x, y)
    steps = 5 if get_optimizer_info(name).needs_closure else STEPS
    _train(model, opt, x, y, steps)
    after = _loss(model, x, y)
    assert after < 0.7 * before, (name, before, after)


@pytest.mark.parametrize("name", list_optimizers())
def test_state_dict_round_trip_resumes_identically(name, regression, mlp_factory):
    x, y = regression
    kwargs = TEST_KWARGS.get(name, {})
    model_a = mlp_factory()
    opt_a = create_optimizer(model_a, name, **kwargs)
    steps = 2 if get_optimizer_info(name).needs_closure else 8
    _train(model_a, opt_a, x, y, steps)

    buf = io.BytesIO()
    torch.save({"model": model_a.state_dict(), "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model_b = mlp_factory(seed=123)  # different init: everything must come from the checkpoint
    model_b.load_state_dict(saved["model"])
    opt_b = create_optimizer(model_b, name, **kwargs)
    opt_b.load_state_dict(saved["opt"])

    _train(model_a, opt_a, x, y, steps + 1)
    _train(model_b, opt_b, x, y, steps + 1)
    for (n, pa), pb in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(pa, pb), (name, n)


def test_optim_info_metadata():
    assert get_optimizer_info("lbfgs").needs_closure and get_optimizer_info("lbfgs").single_group
    assert not get_optimizer_info("adam").needs_closure
    assert get_optimizer_info("adam").default_lr == 1e-3
    assert OPTIMIZERS.entry("lbfgs").meta["needs_closure"] is True
    model = nn.Linear(3, 1)
    mom = create_optimizer(model, "momentum")
    nest = create_optimizer(model, "nesterov")
    plain = create_optimizer(model, "sgd")
    assert mom.param_groups[0]["momentum"] == 0.9 and not mom.param_groups[0]["nesterov"]
    assert nest.param_groups[0]["nesterov"] and plain.param_groups[0]["momentum"] == 0
    assert create_optimizer(model, "adam").param_groups[0]["lr"] == 1e-3
    assert isinstance(create_optimizer(model, "proximal"), ProximalGradient)
    assert isinstance(create_optimizer(model, "bpag"), BPAG)
    assert isinstance(create_optimizer(model, "admm", k=1), ADMM)


def test_lbfgs_from_model_is_one_group():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    opt = create_optimizer(model, "lbfgs")
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 4
    with pytest.raises(ConfigError, match="weight_decay"):
        create_optimizer(model, "lbfgs", weight_decay=0.1)
    with pytest.raises(ConfigError, match="layer_decay"):
        create_optimizer(model, "lbfgs", layer_decay=0.5)


def test_bad_arguments_name_the_argument_and_allowed_values():
    model = nn.Linear(3, 1)
    with pytest.raises(ConfigError, match=r"invalid lr in optimizer 'adam': got -1; allowed: a number >= 0"):
        create_optimizer(model, "adam", lr=-1)
    with pytest.raises(UnknownNameError) as err:
        create_optimizer(model, "adamm")
    assert "'adam'" in str(err.value) and "Allowed:" in str(err.value) and "sgd" in str(err.value)
    with pytest.raises(ConfigError, match=r"invalid argument 'bettas'.*allowed: .*betas"):
        create_optimizer(model, "adam", bettas=(0.9, 0.99))
    with pytest.raises(ConfigError, match="layer_decay.*nn.Module"):
        create_optimizer(list(model.parameters()), "adam", layer_decay=0.5)
    with pytest.raises(ConfigError, match="layer_decay"):
        create_optimizer(model, "adam", layer_decay=1.5)
    with pytest.raises(ConfigError, match="weight_decay.*-0.1"):
        create_optimizer(model, "sgd", weight_decay=-0.1)
    with pytest.raises(ConfigError, match="Invalid beta"):  # torch's own check, wrapped
        create_optimizer(model, "adam", betas=(1.5, 0.9))
    with pytest.raises(ConfigError, match="no trainable parameters"):
        create_optimizer(nn.ReLU(), "adam")


@pytest.mark.parametrize(
    ("cls", "kwargs", "pattern"),
    [
        (ProximalGradient, {"lr": -1.0}, r"invalid lr .*got -1.0"),
        (ProximalGradient, {"lam": -0.5}, r"invalid lam .*got -0.5"),
        (ProximalGradient, {"penalty": "l2"}, r"invalid penalty .*'l2'.*'l1', 'group_lasso'"),
        (ProximalGradient, {"base": "lion"}, r"invalid base .*'lion'.*'sgd', 'adam'"),
        (ProximalGradient, {"momentum": 1.0}, r"invalid momentum .*got 1.0"),
        (ProximalGradient, {"base": "adam", "momentum": 0.9}, r"invalid momentum .*base 'adam'.*betas"),
        (ADMM, {"sparsity": 1.5}, r"invalid sparsity .*got 1.5; allowed: a number in \[0.0, 1.0\)"),
        (ADMM, {"k": -1}, r"invalid k .*got -1; allowed: an integer >= 0"),
        (ADMM, {}, r"invalid k .*give k"),
        (ADMM, {"k": 3, "sparsity": 0.5}, r"only one of them"),
        (ADMM, {"k": 3, "rho": 0.0}, r"invalid rho .*got 0.0"),
        (ADMM, {"k": 3, "admm_interval": 0}, r"invalid admm_interval .*got 0"),
        (BPAG, {"gain_lr": -1.0}, r"invalid gain_lr .*got -1.0"),
        (BPAG, {"momentum": -0.1}, r"invalid momentum .*got -0.1"),
    ],
)
def test_own_optimizers_validate_hyperparameters(cls, kwargs, pattern):
    params = [nn.Parameter(torch.zeros(3, 2))]
    with pytest.raises(ConfigError, match=pattern):
        cls(params, **kwargs)


def test_own_optimizers_validate_param_group_overrides():
    w = nn.Parameter(torch.zeros(3, 2))
    with pytest.raises(ConfigError, match=r"param group 0: got -2"):
        ProximalGradient([{"params": [w], "lam": -2}])
    with pytest.raises(ConfigError, match=r"invalid sparsity .*got 1.5"):
        ADMM([{"params": [w], "sparsity": 1.5}], k=None, sparsity=0.5)
