"""``cellnet``: a network of repeated cells, each a small DAG whose edges choose an operation
(the cell space of NAS-Bench-201, Dong & Yang, ICLR 2020).

A cell has 4 nodes; node 0 is the cell's input, node j (1..3) the sum over i < j of
``op(i, j)(node i)``, and node 3 its output. The 6 edges, in order, are (0,1), (0,2), (1,2),
(0,3), (1,3), (2,3); each takes one of ``CELL_OPS``:

- ``none``: zero (the edge is absent); ``skip``: identity;
- ``conv1x1`` / ``conv3x3``: ReLU -> convolution -> batch norm;
- ``avgpool3x3``: 3x3 average pooling (stride 1).

The network: a 3x3 stem, ``stages`` stages of ``cells`` cells each, a residual reduction block
(stride 2, channels doubled) between stages, then batch norm, ReLU, global average pooling and
a linear head. Plain ``nn.Module``s: the graph is fixed when the model is built, so nothing is
traced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_int
from honing.models._activations import ActivationSpec, GainSpec, create_activation
from honing.models._common import check_activation, check_dropout, check_sizes, wrong_rank

Act = Callable[[int], nn.Module]

CELL_OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
CELL_EDGES = EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _op(name: str, c: int, act: Act) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name == "avgpool3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    k = 1 if name == "conv1x1" else 3
    return nn.Sequential(act(c), nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c))


class Cell(nn.Module):
    """The DAG of ``ops`` (one per edge of ``EDGES``) on ``channels`` channels."""

    def __init__(self, ops: Sequence[str], channels: int, act: Act) -> None:
        super().__init__()
        self.ops = nn.ModuleList(_op(name, channels, act) for name in ops)
        self.names = list(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            total = None
            for e, (a, b) in enumerate(EDGES):
                if b == j and self.names[e] != "none":
                    y = self.ops[e](nodes[a])
                    total = y if total is None else total + y
            nodes.append(total if total is not None else x * 0.0)  # (N, C, H, W)
        return nodes[3]


class Reduction(nn.Module):
    """Stride-2 residual block doubling the channels (as between NAS-Bench-201's stages)."""

    def __init__(self, cin: int, cout: int, act: Act) -> None:
        super().__init__()
        self.body = nn.Sequential(act(cin), nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(cout), act(cout), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


def check_cell(cell: Any) -> list[str]:
    if isinstance(cell, (str, bytes)) or not isinstance(cell, Sequence) or len(cell) != len(EDGES):
        raise ConfigError(f"invalid cell: got {cell!r}; allowed: a list of {len(EDGES)} operations, one per edge "
                          f"{', '.join(f'{a}->{b}' for a, b in EDGES)}, each one of {', '.join(CELL_OPS)}")
    for i, name in enumerate(cell):
        if name not in CELL_OPS:
            raise ConfigError(f"invalid cell[{i}] (edge {EDGES[i][0]}->{EDGES[i][1]}): got {name!r}; allowed: "
                              f"{', '.join(CELL_OPS)}")
    return list(cell)


class CellNet(nn.Module):
    """Stem -> stages of identical cells (reductions between) -> pooled linear head.

    Args:
        cell: the operation of each of the 6 edges (``EDGES``), from ``CELL_OPS``.
        channels: channels of the first stage (doubled at each reduction).
        cells: cells per stage. stages: stages (each after the first halves H and W).
        activation, gain: the activation before each convolution (relu) and its gain.
        dropout: before the head.
    """

    def __init__(self, input_shape: Sequence[int], num_outputs: int, *,
                 cell: Sequence[str] = ("conv3x3", "conv3x3", "conv3x3", "skip", "conv1x1", "conv3x3"),
                 channels: int = 16, cells: int = 1, stages: int = 3, activation: ActivationSpec = "relu",
                 gain: GainSpec = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        if len(self.input_shape) not in (2, 3):
            raise wrong_rank("cellnet", self.input_shape, "(C, H, W) or (H, W)",
                             "For flat features use 'mlp'; for sequences use 'rnn' or 'transformer'.")
        ops = check_cell(cell)
        c = int(check_int("channels", channels, low=1))
        check_int("cells", cells, low=1, high=16)
        check_int("stages", stages, low=1, high=5)
        gain = check_activation(activation, gain)
        self.drop = nn.Dropout(check_dropout(dropout))
        act = lambda n: create_activation(activation, n, gain, dim=1)  # noqa: E731
        self._add_channel = len(self.input_shape) == 2
        cin = 1 if self._add_channel else self.input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for s in range(stages):
            if s > 0:
                layers.append(Reduction(c, 2 * c, act))
                c *= 2
            layers += [Cell(ops, c, act) for _ in range(cells)]
        self.layers = nn.Sequential(*layers)
        self.tail = nn.Sequential(nn.BatchNorm2d(c), act(c))
        self.head = nn.Linear(c, self.num_outputs)

    def layer_groups(self) -> list[list[str]]:
        return [["stem"]] + [[f"layers.{i}"] for i in range(len(self.layers))] + [["tail", "head"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_channel:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        x = self.tail(self.layers(self.stem(x)))  # (N, C, H', W')
        return self.head(self.drop(x.mean(dim=(2, 3))))  # (N, num_outputs)
