"""Activations by name, and the adaptive gain f(c * x) in every model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from honing._core import ConfigError, UnknownNameError
from honing.models import (
    MODELS,
    AdaptiveGain,
    count_parameters,
    create_activation,
    create_model,
    list_activations,
    list_models,
)

REFERENCE = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "relu6": F.relu6,
    "hardswish": F.hardswish,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def test_registry_has_the_activations():
    assert set(list_activations()) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_values(name):
    x = torch.linspace(-3, 3, 61)
    torch.testing.assert_close(create_activation(name)(x), REFERENCE[name](x))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_every_activation_trains_in_a_model(name):
    model = create_model("mlp", input_shape=(4,), num_outputs=2, hidden=[6], activation=name, seed=0)
    y = model(torch.randn(3, 4))
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_activation_parameters_and_their_checks():
    x = torch.linspace(-2, 2, 9)
    act = create_activation({"name": "leaky_relu", "negative_slope": 0.2})
    torch.testing.assert_close(act(x), F.leaky_relu(x, 0.2))
    torch.testing.assert_close(create_activation({"name": "elu", "alpha": 0.5})(x), F.elu(x, 0.5))
    model = create_model("cnn", input_shape=(1, 5, 5), num_outputs=2,
                         activation={"name": "leaky_relu", "negative_slope": 0.3})
    assert model.blocks[0].act.negative_slope == 0.3
    with pytest.raises(ConfigError, match="'slope'.*negative_slope"):
        create_activation({"name": "leaky_relu", "slope": 0.2})
    with pytest.raises(ConfigError, match="negative_slope.*-1"):
        create_activation({"name": "leaky_relu", "negative_slope": -1})
    with pytest.raises(UnknownNameError, match="activation 'rleu'.*relu"):
        create_activation("rleu")


def test_adaptive_gain_is_f_of_c_times_x():
    act = create_activation("tanh", num_features=3, gain="adaptive")
    assert isinstance(act, AdaptiveGain) and act.gain.shape == (3,)
    assert torch.all(act.gain == 1.0)
    with torch.no_grad():
        act.gain.copy_(torch.tensor([0.5, 1.0, 2.0]))
    x = torch.randn(4, 3)
    torch.testing.assert_close(act(x), torch.tanh(x * torch.tensor([0.5, 1.0, 2.0])))
    conv = create_activation("relu", num_features=2, gain="adaptive", dim=1)
    with torch.no_grad():
        conv.gain.copy_(torch.tensor([1.0, -1.0]))
    img = torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(conv(img), torch.stack([img[:, 0].relu(), (-img[:, 1]).relu()], 1))
    fixed = create_activation("sigmoid", gain=3.0)
    torch.testing.assert_close(fixed(x), torch.sigmoid(3 * x))
    with pytest.raises(ConfigError, match="num_features"):
        create_activation("relu", gain="adaptive")
    with pytest.raises(ConfigError, match="gain.*'adaptive'"):
        create_activation("relu", gain="learned")


def _gains(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if n.endswith("gain")}


@pytest.mark.parametrize("name", list_models())
def test_adaptive_gain_in_every_model(name):
    shape = tuple(MODELS.entry(name).meta["example_input_shape"])
    plain = create_model(name, input_shape=shape, num_outputs=3, seed=0)
    model = create_model(name, input_shape=shape, num_outputs=3, gain="adaptive", seed=0)
    gains = _gains(model)
    assert gains and not _gains(plain)
    # the gains are the only extra parameters, all start at 1 (so the model equals the plain one)
    assert count_parameters(model) - count_parameters(plain) == sum(p.numel() for p in gains.values())
    assert all(torch.all(p == 1.0) for p in gains.values())
    x = torch.randn(4, *shape)
    model.eval(), plain.eval()
    torch.testing.assert_close(model(x), plain(x))
    # every gain receives a gradient
    model.train()
    model(x).pow(2).sum().backward()
    for n, p in gains.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    # changing any one gain changes the output
    model.eval()
    with torch.no_grad():
        base = model(x)
        for n, p in gains.items():
            p.mul_(1.7)
            assert not torch.allclose(model(x), base, atol=1e-6), n
            p.div_(1.7)


@pytest.mark.parametrize("name", list_models())
def test_adaptive_gain_set_to_c_equals_fixed_gain_c(name):
    shape = tuple(MODELS.entry(name).meta["example_input_shape"])
    adaptive = create_model(name, input_shape=shape, num_outputs=3, gain="adaptive", seed=0).eval()
    fixed = create_model(name, input_shape=shape, num_outputs=3, gain=1.5, seed=0).eval()
    with torch.no_grad():
        for p in _gains(adaptive).values():
            p.fill_(1.5)
    x = torch.randn(4, *shape)
    torch.testing.assert_close(adaptive(x), fixed(x))
    plain = create_model(name, input_shape=shape, num_outputs=3, seed=0).eval()
    assert not torch.allclose(fixed(x), plain(x))


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("mlp", dict(hidden=[8, 5]), {"blocks.0.act.gain": (8,), "blocks.1.act.gain": (5,)}),
        ("cnn", dict(channels=[4, 6], head_hidden=5),
         {"blocks.0.act.gain": (4,), "blocks.1.act.gain": (6,), "head.act.gain": (5,)}),
        ("rnn", dict(cell="lstm", layers=2, hidden_size=4, bidirectional=True),
         {"layers.0.gain": (2, 16), "layers.1.gain": (2, 16)}),
        ("rnn", dict(cell="gru", hidden_size=5), {"layers.0.gain": (1, 15)}),
        ("transformer", dict(layers=2, width=8, heads=2, ff_width=12),
         {"blocks.0.act.gain": (12,), "blocks.1.act.gain": (12,)}),
    ],
)
def test_gain_per_hidden_neuron_or_channel(name, kwargs, expected):
    shape = tuple(MODELS.entry(name).meta["example_input_shape"])
    model = create_model(name, input_shape=shape, num_outputs=3, gain="adaptive", **kwargs)
    assert {n: tuple(p.shape) for n, p in _gains(model).items()} == expected
