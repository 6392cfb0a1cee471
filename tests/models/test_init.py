"""Initialization schemes: the statistics each promises, what they leave alone, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from honing._core import ConfigError, UnknownNameError
from honing.models import MODELS, create_model, initialize, list_init_schemes, list_models

FAN_IN, FAN_OUT = 512, 256


def _mlp(init, **kw) -> nn.Module:
    return create_model("mlp", input_shape=(FAN_IN,), num_outputs=10, hidden=[FAN_OUT], init=init, seed=0, **kw)


def _weight(model) -> torch.Tensor:
    return model.blocks[0].linear.weight.detach()


def test_registry_lists_the_schemes():
    assert set(list_init_schemes()) == {
        "default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
        "orthogonal", "normal", "uniform",
    }


@pytest.mark.parametrize(
    "init,expected_std",
    [
        ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ({"name": "xavier_normal", "gain": 2.0}, 2 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("kaiming_uniform", math.sqrt(2 / FAN_IN)),
        ("kaiming_normal", math.sqrt(2 / FAN_IN)),
        ({"name": "kaiming_normal", "mode": "fan_out"}, math.sqrt(2 / FAN_OUT)),
        ({"name": "kaiming_normal", "nonlinearity": "linear"}, math.sqrt(1 / FAN_IN)),
        ("normal", 0.02),
        ({"name": "normal", "std": 0.1}, 0.1),
        ({"name": "uniform", "a": 0.3}, 0.3 / math.sqrt(3)),
    ],
    ids=lambda v: str(v),
)
def test_weight_std_matches_the_scheme_and_biases_are_zero(init, expected_std):
    model = _mlp(init)
    w = _weight(model)
    assert w.std().item() == pytest.approx(expected_std, rel=0.05)
    assert abs(w.mean().item()) < 0.1 * expected_std
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0


def test_uniform_bounds_and_uniform_shapes():
    w = _weight(_mlp({"name": "uniform", "a": 0.3}))
    assert w.abs().max() <= 0.3
    assert w.abs().max() > 0.29  # fills the interval
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    assert _weight(_mlp("xavier_uniform")).abs().max() <= bound


def test_orthogonal_rows_are_orthonormal():
    w = _weight(_mlp("orthogonal"))  # (256, 512): W W^T = I
    torch.testing.assert_close(w @ w.T, torch.eye(FAN_OUT), atol=1e-4, rtol=0)
    w2 = _weight(_mlp({"name": "orthogonal", "gain": 0.5}))
    torch.testing.assert_close(w2 @ w2.T, 0.25 * torch.eye(FAN_OUT), atol=1e-4, rtol=0)


def test_orthogonal_recurrent_weights_per_gate():
    model = create_model("rnn", input_shape=(5, 3), num_outputs=2, hidden_size=16, cell="gru", init="orthogonal", seed=0)
    cell = model.layers[0].cell
    for block in cell.weight_hh_l0.detach().chunk(3):  # r, z, n: each (16, 16) orthogonal
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-4, rtol=0)
    assert torch.count_nonzero(cell.bias_ih_l0) == 0 and torch.count_nonzero(cell.bias_hh_l0) == 0


def test_kaiming_on_convolutions():
    model = create_model("cnn", input_shape=(32, 8, 8), num_outputs=2, channels=[128], kernel_size=3,
                         init="kaiming_normal", seed=0)
    w = model.blocks[0].conv.weight.detach()  # (128, 32, 3, 3): fan_in 288
    assert w.std().item() == pytest.approx(math.sqrt(2 / 288), rel=0.05)
    assert torch.count_nonzero(model.blocks[0].conv.bias) == 0


def test_default_leaves_torch_initialization():
    a = create_model("mlp", input_shape=(6,), num_outputs=2, seed=3)
    b = create_model("mlp", input_shape=(6,), num_outputs=2, seed=3, init="default")
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert any(torch.count_nonzero(m.bias) > 0 for m in a.modules() if isinstance(m, nn.Linear))


def test_norms_gains_and_embeddings_are_untouched():
    model = create_model("mlp", input_shape=(6,), num_outputs=2, batch_norm=True, gain="adaptive", seed=0)
    tr = create_model("transformer", input_shape=(5, 2), num_outputs=2, width=8, heads=2,
                      positional="learned", pool="cls", seed=0)
    with torch.no_grad():
        for m in (model, tr):
            for name, p in m.named_parameters():
                if "norm" in name or name.endswith("gain") or "pos_embed" in name or "cls_token" in name:
                    p.fill_(0.5)
    for m in (model, tr):
        initialize(m, "xavier_normal")
        touched = 0
        for name, p in m.named_parameters():
            if "norm" in name or name.endswith("gain") or "pos_embed" in name or "cls_token" in name:
                assert torch.all(p == 0.5), name
                touched += 1
        assert touched >= 2


def test_initialize_accepts_name_plus_kwargs_or_mapping_and_returns_model():
    model = create_model("mlp", input_shape=(400,), num_outputs=2, hidden=[300], seed=0)
    assert initialize(model, "normal", std=0.5) is model
    assert _weight(model).std().item() == pytest.approx(0.5, rel=0.05)
    initialize(model, {"name": "normal", "std": 0.01})
    assert _weight(model).std().item() == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("scheme", list_init_schemes())
@pytest.mark.parametrize("name", list_models())
def test_every_scheme_on_every_model_still_runs(scheme, name):
    shape = tuple(MODELS.entry(name).meta["example_input_shape"])
    model = create_model(name, input_shape=shape, num_outputs=3, init=scheme, seed=0).eval()
    y = model(torch.randn(4, *shape))
    assert y.shape == (4, 3) and torch.isfinite(y).all()
    assert y.std() > 0


def test_bad_init_arguments():
    with pytest.raises(UnknownNameError, match="init.*orthogonal"):
        _mlp("orthogonl")
    with pytest.raises(ConfigError, match="'sd'.*std"):
        _mlp({"name": "normal", "sd": 0.1})
    with pytest.raises(ConfigError, match="std.*-0.1"):
        _mlp({"name": "normal", "std": -0.1})
    with pytest.raises(ConfigError, match="nonlinearity.*relu"):
        _mlp({"name": "kaiming_normal", "nonlinearity": "swish"})
    with pytest.raises(ConfigError, match="name"):
        _mlp({"std": 0.1})
    with pytest.raises(ConfigError, match="init"):
        _mlp(3)
