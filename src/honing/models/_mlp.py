"""Multi-layer perceptron on flattened inputs, optionally with batch norm and residual blocks.

Residual mode (He et al., "Deep residual learning for image recognition", CVPR 2016): every
hidden block computes ``y = skip(x) + dropout(act(bn(linear(x))))`` where ``skip`` is the
identity when the block keeps the width, and a bias-free linear projection when it changes it
(the "projection shortcut", option B of the paper). So every block has a skip path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from honing.models._activations import ActivationSpec, GainSpec, create_activation
from honing.models._common import check_activation, check_bn, check_dropout, check_sizes, check_widths


class MLPBlock(nn.Module):
    """Linear -> [BatchNorm] -> activation -> dropout, plus an optional skip path."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: ActivationSpec,
        gain: GainSpec,
        dropout: float,
        batch_norm: bool,
        bn_momentum: float,
        bn_eps: float,
        residual: bool,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(out_features, momentum=bn_momentum, eps=bn_eps) if batch_norm else None
        self.act = create_activation(activation, out_features, gain)
        self.drop = nn.Dropout(dropout)
        if not residual:
            self.skip = None
        elif in_features == out_features:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)  # (N, out)
        if self.norm is not None:
            h = self.norm(h)
        h = self.drop(self.act(h))
        if self.skip is not None:
            h = h + self.skip(x)  # (N, out)
        return h


class MLP(nn.Module):
    """Fully connected network; any input shape is flattened to ``prod(input_shape)`` features.

    Args:
        hidden: widths of the hidden layers, input to output ([] gives a linear model).
        activation: name or ``{"name": ..., **params}``; gain: None, "adaptive" or a number.
        dropout: after each hidden activation. batch_norm: BatchNorm1d before each activation.
        residual: add a skip path to every hidden block (identity or linear projection).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        *,
        hidden: Sequence[int] = (128, 64),
        activation: ActivationSpec = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        residual: bool = False,
        gain: GainSpec = None,
    ) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        widths = check_widths("hidden", hidden)
        dropout = check_dropout(dropout)
        bn_momentum, bn_eps = check_bn(bn_momentum, bn_eps)
        gain = check_activation(activation, gain)
        in_features = math.prod(self.input_shape)
        blocks = []
        for width in widths:
            blocks.append(MLPBlock(
                in_features, width, activation=activation, gain=gain, dropout=dropout,
                batch_norm=bool(batch_norm), bn_momentum=bn_momentum, bn_eps=bn_eps, residual=bool(residual),
            ))
            in_features = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(in_features, self.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, prod(input_shape))
        for block in self.blocks:
            x = block(x)  # (N, width)
        return self.head(x)  # (N, num_outputs)

    def layer_groups(self) -> list[list[str]]:
        return [[f"blocks.{i}"] for i in range(len(self.blocks))] + [["head"]]
