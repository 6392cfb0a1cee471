"""create_model: sizes from the data, and errors that name the argument and what is allowed."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from honing._core import ConfigError, UnknownNameError
from honing.models import MODELS, create_model, list_models


def _shape(name: str) -> tuple[int, ...]:
    return tuple(MODELS.entry(name).meta["example_input_shape"])


def test_sizes_come_from_data_and_explicit_sizes_override():
    data = SimpleNamespace(input_shape=(1, 8, 8), num_outputs=10, task="classification")
    model = create_model("cnn", data=data, channels=[4])
    assert model.input_shape == (1, 8, 8) and model.num_outputs == 10
    model = create_model("cnn", data=data, num_outputs=3, channels=[4])
    assert model.num_outputs == 3 and model.input_shape == (1, 8, 8)
    model = create_model("mlp", data=data, input_shape=[5], hidden=[4])
    assert model.input_shape == (5,) and model.num_outputs == 10
    assert create_model("mlp", input_shape=7, num_outputs=2).input_shape == (7,)


def test_missing_sizes_say_what_to_pass():
    with pytest.raises(ConfigError, match="input_shape and num_outputs: pass data="):
        create_model("mlp")
    with pytest.raises(ConfigError, match="needs num_outputs"):
        create_model("mlp", input_shape=(4,))
    with pytest.raises(ConfigError, match="needs input_shape"):
        create_model("mlp", data=SimpleNamespace(num_outputs=2))


def test_bad_sizes():
    with pytest.raises(ConfigError, match="input_shape.*positive ints"):
        create_model("mlp", input_shape=(0, 3), num_outputs=2)
    with pytest.raises(ConfigError, match="num_outputs.*>= 1"):
        create_model("mlp", input_shape=(3,), num_outputs=0)


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match="'cnnn'.*'cnn'.*Allowed: cellnet, cnn, mlp, mobilenet"):
        create_model("cnnn", input_shape=(3,), num_outputs=2)


@pytest.mark.parametrize("name", list_models())
def test_unknown_kwarg_names_it_and_the_allowed_ones(name):
    allowed = [p for p in inspect.signature(MODELS.get(name)).parameters if p not in ("input_shape", "num_outputs")]
    with pytest.raises(ConfigError, match=rf"'colour'.*model '{name}'.*allowed: .*{allowed[0]}") as info:
        create_model(name, input_shape=_shape(name), num_outputs=2, colour="red")
    assert all(a in str(info.value) for a in allowed)
    assert "gain" in allowed and "activation" in allowed and "dropout" in allowed


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("dropout", [-0.1, 1.0, "high"])
def test_bad_dropout(name, dropout):
    with pytest.raises(ConfigError, match=rf"dropout: got {dropout!r}.*\[0.0, 1.0\)"):
        create_model(name, input_shape=_shape(name), num_outputs=2, dropout=dropout)


@pytest.mark.parametrize("name", list_models())
def test_bad_activation_and_gain(name):
    with pytest.raises(UnknownNameError, match="activation 'relux'.*relu"):
        create_model(name, input_shape=_shape(name), num_outputs=2, activation="relux")
    with pytest.raises(ConfigError, match="gain: got 'auto'.*'adaptive'"):
        create_model(name, input_shape=_shape(name), num_outputs=2, gain="auto")
    with pytest.raises(UnknownNameError, match="init scheme 'xavier'.*xavier_normal"):
        create_model(name, input_shape=_shape(name), num_outputs=2, init="xavier")


@pytest.mark.parametrize(
    "name,kwargs,pattern",
    [
        ("mlp", dict(hidden=[8, 0]), r"hidden: got \[8, 0\].*positive ints"),
        ("mlp", dict(bn_momentum=0.0), r"bn_momentum.*\(0.0, 1.0\]"),
        ("mlp", dict(bn_eps=-1e-5), r"bn_eps.*> 0"),
        ("cnn", dict(channels=[]), r"channels.*non-empty"),
        ("cnn", dict(pool="median"), r"pool: got 'median'.*'max', 'avg', None"),
        ("cnn", dict(kernel_size=0), r"kernel_size.*>= 1"),
        ("cnn", dict(head_hidden=0), r"head_hidden.*>= 1"),
        ("rnn", dict(cell="rnn"), r"cell: got 'rnn'.*'lstm', 'gru'"),
        ("rnn", dict(layers=0), r"layers.*>= 1"),
        ("rnn", dict(pool="max"), r"pool: got 'max'.*'last', 'mean'"),
        ("transformer", dict(positional="rotary"), r"positional: got 'rotary'.*'sinusoidal', 'learned', None"),
        ("transformer", dict(pool="first"), r"pool: got 'first'.*'mean', 'cls'"),
        ("transformer", dict(width=6, heads=4), r"heads: got 4 with width=6.*1, 2, 3, 6"),
    ],
)
def test_bad_model_arguments(name, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        create_model(name, input_shape=_shape(name), num_outputs=2, **kwargs)


def test_models_can_be_built_directly_with_the_same_checks():
    from honing.models import MLP

    assert MLP((4,), 2, hidden=[3])(__import__("torch").randn(2, 4)).shape == (2, 2)
    with pytest.raises(ConfigError, match="dropout"):
        MLP((4,), 2, dropout=2.0)
