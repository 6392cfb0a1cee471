"""Pieces shared by the models: argument checks and the output head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_int, check_number
from honing.models._activations import ActivationSpec, GainSpec, check_gain, create_activation


def check_shape(name: str, value: Any) -> tuple[int, ...]:
    """A per-sample shape: an int or a non-empty sequence of positive ints -> tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if (
        not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ConfigError(f"invalid {name}: got {value!r}; allowed: a non-empty tuple of positive ints, e.g. (64,) or (1, 28, 28)")
    return tuple(int(v) for v in value)


def check_dropout(value: Any, name: str = "dropout") -> float:
    out = check_number(name, value, low=0.0, high=1.0, high_inclusive=False)
    return float(out)  # type: ignore[arg-type]


def check_widths(name: str, value: Any, *, allow_empty: bool = True) -> list[int]:
    """A list of layer widths (positive ints)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, Sequence) and not isinstance(value, str) and (allow_empty or len(value) > 0)
    if ok:
        ok = all(not isinstance(v, bool) and isinstance(v, int) and v >= 1 for v in value)
    if not ok:
        need = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(f"invalid {name}: got {value!r}; allowed: {need} of positive ints, e.g. [128, 64]")
    return [int(v) for v in value]


def check_bn(momentum: Any, eps: Any) -> tuple[float, float]:
    m = check_number("bn_momentum", momentum, low=0.0, high=1.0, low_inclusive=False)
    e = check_number("bn_eps", eps, low=0.0, low_inclusive=False)
    return float(m), float(e)  # type: ignore[arg-type]


def check_activation(activation: ActivationSpec, gain: GainSpec) -> GainSpec:
    """Fail at construction on a bad activation or gain, before any layer is built."""
    create_activation(activation)
    return check_gain(gain)


def wrong_rank(model: str, input_shape: tuple[int, ...], allowed: str, hint: str) -> ConfigError:
    return ConfigError(f"invalid input_shape for model {model!r}: got {input_shape}; allowed: {allowed}. {hint}")


class Head(nn.Module):
    """Features (N, F) -> optional hidden layer -> (N, num_outputs)."""

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        *,
        hidden: int | None,
        activation: ActivationSpec,
        gain: GainSpec,
        dropout: float,
    ) -> None:
        super().__init__()
        if hidden is not None:
            check_int("head_hidden", hidden, low=1, allow_none=True)
            self.hidden = nn.Linear(in_features, hidden)
            self.act = create_activation(activation, hidden, gain)
            in_features = hidden
        else:
            self.hidden = None
            self.act = None
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(in_features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hidden is not None:
            x = self.act(self.hidden(x))  # (N, head_hidden)
        return self.out(self.drop(x))  # (N, num_outputs)


def check_sizes(input_shape: Any, num_outputs: Any) -> tuple[tuple[int, ...], int]:
    shape = check_shape("input_shape", input_shape)
    outputs = check_int("num_outputs", num_outputs, low=1)
    return shape, int(outputs)  # type: ignore[arg-type]
