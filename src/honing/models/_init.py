"""Weight initialization schemes by name.

A scheme initialises the weights of ``nn.Linear``, convolutions and recurrent layers and sets
their biases to zero; normalization layers, embeddings and adaptive gains are left untouched.
Recurrent weight matrices stack one block per gate (4 for LSTM, 3 for GRU): each gate's block is
initialised on its own, so ``orthogonal`` gives an orthogonal recurrent matrix per gate.

References:
    X. Glorot and Y. Bengio, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS 2010 (xavier).
    K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers", ICCV 2015 (kaiming).
    A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the nonlinear dynamics of
    learning in deep linear neural networks", ICLR 2014 (orthogonal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

import torch
from torch import nn

from honing._core import Registry, check_choice, check_number
from honing.models._activations import check_kwargs, split_spec

InitSpec = Union[None, str, Mapping[str, Any]]
InitFn = Callable[..., None]

INIT_SCHEMES: Registry[None] = Registry("init scheme")

_NONLINEARITIES = ("relu", "leaky_relu", "linear", "tanh", "sigmoid", "selu")
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _default(weight: torch.Tensor) -> None:
    """Leave PyTorch's own initialization (handled before dispatch)."""


def _xavier_uniform(weight: torch.Tensor, *, gain: float = 1.0) -> None:
    nn.init.xavier_uniform_(weight, gain=gain)


def _xavier_normal(weight: torch.Tensor, *, gain: float = 1.0) -> None:
    nn.init.xavier_normal_(weight, gain=gain)


def _kaiming_uniform(
    weight: torch.Tensor, *, nonlinearity: str = "relu", a: float = 0.0, mode: str = "fan_in"
) -> None:
    nn.init.kaiming_uniform_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


def _kaiming_normal(
    weight: torch.Tensor, *, nonlinearity: str = "relu", a: float = 0.0, mode: str = "fan_in"
) -> None:
    nn.init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


def _orthogonal(weight: torch.Tensor, *, gain: float = 1.0) -> None:
    nn.init.orthogonal_(weight, gain=gain)


def _normal(weight: torch.Tensor, *, std: float = 0.02, mean: float = 0.0) -> None:
    nn.init.normal_(weight, mean=mean, std=std)


def _uniform(weight: torch.Tensor, *, a: float = 0.05) -> None:
    nn.init.uniform_(weight, -a, a)


INIT_SCHEMES.register("default", _default, description="leave PyTorch's initialization")
INIT_SCHEMES.register("xavier_uniform", _xavier_uniform, description="Glorot uniform (gain)", aliases=("glorot_uniform",))
INIT_SCHEMES.register("xavier_normal", _xavier_normal, description="Glorot normal (gain)", aliases=("glorot_normal",))
INIT_SCHEMES.register("kaiming_uniform", _kaiming_uniform, description="He uniform (nonlinearity, a, mode)", aliases=("he_uniform",))
INIT_SCHEMES.register("kaiming_normal", _kaiming_normal, description="He normal (nonlinearity, a, mode)", aliases=("he_normal",))
INIT_SCHEMES.register("orthogonal", _orthogonal, description="(semi-)orthogonal matrices (gain)")
INIT_SCHEMES.register("normal", _normal, description="N(mean, std^2), std default 0.02")
INIT_SCHEMES.register("uniform", _uniform, description="U(-a, a), a default 0.05")


def list_init_schemes() -> list[str]:
    return INIT_SCHEMES.names()


def _check_params(name: str, params: dict[str, Any]) -> None:
    where = f"init scheme {name!r}"
    for key in ("gain", "std"):
        if key in params:
            check_number(key, params[key], low=0.0, low_inclusive=False, where=where)
    if "a" in params:
        low_inclusive = name.startswith("kaiming")  # kaiming: negative slope >= 0; uniform: bound > 0
        check_number("a", params["a"], low=0.0, low_inclusive=low_inclusive, where=where)
    if "mean" in params:
        check_number("mean", params["mean"], where=where)
    if "nonlinearity" in params:
        check_choice("nonlinearity", params["nonlinearity"], _NONLINEARITIES, where=where)
    if "mode" in params:
        check_choice("mode", params["mode"], ("fan_in", "fan_out"), where=where)


def resolve_init(scheme: InitSpec, **kwargs: Any) -> tuple[str, InitFn, dict[str, Any]]:
    """Validate ``scheme`` (a name or ``{"name": ..., **params}``) plus ``kwargs`` -> (name, fn, params)."""
    if scheme is None:
        scheme = "default"
    key, params = split_spec(scheme, "init")
    params.update(kwargs)
    entry = INIT_SCHEMES.entry(key)
    check_kwargs(entry.factory, params, what=f"init scheme {entry.name!r}", skip=("weight",))
    _check_params(entry.name, params)
    return entry.name, entry.factory, params


def initialize(model: nn.Module, scheme: InitSpec = "default", **kwargs: Any) -> nn.Module:
    """Initialise ``model``'s Linear, convolution and recurrent weights with ``scheme``, biases to 0.

    ``scheme`` is a name (``"orthogonal"``) with parameters in ``kwargs`` (``std=0.01``), or a
    mapping ``{"name": "normal", "std": 0.01}``. ``"default"`` leaves the model as it is.
    Returns ``model``.
    """
    name, fn, params = resolve_init(scheme, **kwargs)
    if name == "default":
        return model
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, *_CONVS)):
                fn(module.weight, **params)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.RNNBase):
                _init_recurrent(module, fn, params)
    return model


def _init_recurrent(module: nn.RNNBase, fn: InitFn, params: dict[str, Any]) -> None:
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    for pname, p in module.named_parameters(recurse=False):
        if pname.startswith("bias_"):
            p.zero_()
        elif pname.startswith("weight_hr"):  # LSTM projection: a plain matrix
            fn(p, **params)
        elif pname.startswith("weight_"):
            for block in p.chunk(gates, dim=0):  # (gates * H, in) -> gates x (H, in), views of p
                fn(block, **params)
