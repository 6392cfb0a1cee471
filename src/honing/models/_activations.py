"""Activation functions by name, and the adaptive gain f(c * x).

Adaptive gain ("backpropagation with adaptive gain", BPAG) gives every hidden neuron its own
learnable steepness ``c`` (initialised to 1.0) and trains it by backpropagation along with the
weights: the unit computes ``f(c * (w . x + b))``.

References:
    J. K. Kruschke and J. R. Movellan, "Benefits of gain: speeded learning and minimal hidden
    layers in back-propagation networks", IEEE Trans. Systems, Man, and Cybernetics 21(1), 1991.
    N. M. Nawi, R. S. Ransing and M. R. Ransing, "An improved learning algorithm based on the
    conjugate gradient method for back propagation neural networks" (adaptive gain), 2006.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

import torch
from torch import nn

from honing._core import ConfigError, Registry, check_int, check_number

ActivationSpec = Union[str, Mapping[str, Any]]
GainSpec = Union[None, str, float]

ACTIVATIONS: Registry[nn.Module] = Registry("activation")


def _relu() -> nn.Module:
    return nn.ReLU()


def _leaky_relu(negative_slope: float = 0.01) -> nn.Module:
    check_number("negative_slope", negative_slope, low=0.0)
    return nn.LeakyReLU(negative_slope=float(negative_slope))


def _elu(alpha: float = 1.0) -> nn.Module:
    check_number("alpha", alpha, low=0.0, low_inclusive=False)
    return nn.ELU(alpha=float(alpha))


def _gelu(approximate: str = "none") -> nn.Module:
    if approximate not in ("none", "tanh"):
        raise ConfigError(f"invalid approximate for gelu: got {approximate!r}; allowed: 'none', 'tanh'")
    return nn.GELU(approximate=approximate)


def _silu() -> nn.Module:
    return nn.SiLU()


def _relu6() -> nn.Module:
    return nn.ReLU6()


def _hardswish() -> nn.Module:
    return nn.Hardswish()


def _tanh() -> nn.Module:
    return nn.Tanh()


def _sigmoid() -> nn.Module:
    return nn.Sigmoid()


ACTIVATIONS.register("relu", _relu, description="max(0, x)")
ACTIVATIONS.register("leaky_relu", _leaky_relu, description="max(0, x) + negative_slope * min(0, x)")
ACTIVATIONS.register("elu", _elu, description="exponential linear unit (alpha)")
ACTIVATIONS.register("gelu", _gelu, description="Gaussian error linear unit (approximate='none'|'tanh')")
ACTIVATIONS.register("silu", _silu, description="x * sigmoid(x), a.k.a. swish", aliases=("swish",))
ACTIVATIONS.register("relu6", _relu6, description="min(max(0, x), 6), MobileNetV2's")
ACTIVATIONS.register("hardswish", _hardswish, description="x * relu6(x + 3) / 6, MobileNetV3's cheap swish",
                     aliases=("hard_swish",))
ACTIVATIONS.register("tanh", _tanh, description="hyperbolic tangent")
ACTIVATIONS.register("sigmoid", _sigmoid, description="logistic function")


def list_activations() -> list[str]:
    return ACTIVATIONS.names()


class AdaptiveGain(nn.Module):
    """``f(c * x)`` with a learnable gain ``c`` per feature (per channel), initialised to 1.0.

    ``dim`` is the feature axis of the input: -1 for (N, F) or (N, T, F), 1 for (N, C, H, W).
    """

    def __init__(self, activation: nn.Module, num_features: int, *, dim: int = -1) -> None:
        super().__init__()
        self.activation = activation
        self.gain = nn.Parameter(torch.ones(num_features))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return self.activation(x * self.gain.view(shape))  # gain broadcast along the feature axis

    def extra_repr(self) -> str:
        return f"num_features={self.gain.numel()}, dim={self.dim}"


class FixedGain(nn.Module):
    """``f(g * x)`` with a constant (not trained) gain ``g``."""

    def __init__(self, activation: nn.Module, gain: float) -> None:
        super().__init__()
        self.activation = activation
        self.value = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x * self.value)

    def extra_repr(self) -> str:
        return f"gain={self.value}"


def check_gain(gain: Any) -> GainSpec:
    """``gain`` is None (plain activation), "adaptive" (learnable per neuron) or a positive number."""
    if gain is None or gain == "adaptive":
        return gain
    if isinstance(gain, (int, float)) and not isinstance(gain, bool) and gain > 0:
        return float(gain)
    raise ConfigError(f"invalid gain: got {gain!r}; allowed: None, 'adaptive', or a positive number")


def split_spec(spec: Any, what: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``{"name": ..., **params}`` -> (name, params)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        params = dict(spec)
        if "name" not in params:
            raise ConfigError(
                f"invalid {what}: got {dict(spec)!r}; allowed: a name or a mapping with a 'name' key, "
                f"e.g. {{'name': ..., <params>}}"
            )
        return params.pop("name"), params
    raise ConfigError(f"invalid {what}: got {spec!r}; allowed: a name (str) or a mapping with a 'name' key")


def check_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any], *, what: str, skip: tuple[str, ...] = ()) -> None:
    """Raise ConfigError naming any key of ``kwargs`` that ``fn`` does not accept."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [
        n for n, p in params.items()
        if n not in skip and n != "self"
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"unknown argument {key!r} for {what}; allowed: {', '.join(allowed) if allowed else '(none)'}"
            )


def create_activation(
    name: ActivationSpec,
    num_features: int | None = None,
    gain: GainSpec = None,
    *,
    dim: int = -1,
) -> nn.Module:
    """Build an activation module.

    ``name`` is a registered name or a mapping ``{"name": "leaky_relu", "negative_slope": 0.1}``.
    ``gain="adaptive"`` wraps it as :class:`AdaptiveGain` (needs ``num_features``; ``dim`` is the
    feature axis); a positive number applies a fixed gain.
    """
    key, params = split_spec(name, "activation")
    entry = ACTIVATIONS.entry(key)
    check_kwargs(entry.factory, params, what=f"activation {entry.name!r}")
    act = entry.factory(**params)
    gain = check_gain(gain)
    if gain is None:
        return act
    if gain == "adaptive":
        if num_features is None:
            raise ConfigError("gain='adaptive' needs num_features (the number of neurons or channels)")
        check_int("num_features", num_features, low=1)
        return AdaptiveGain(act, int(num_features), dim=dim)
    return FixedGain(act, float(gain))
