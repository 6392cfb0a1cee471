"""Small problems and models shared by the optimizer tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class GainMLP(nn.Module):
    """Two-layer tanh network with a learnable per-neuron gain ``c``: ``fc2(tanh(c * fc1(x)))``."""

    def __init__(self, n_in: int = 5, hidden: int = 16, n_out: int = 1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.hidden_gain = nn.Parameter(torch.ones(hidden))
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(torch.tanh(self.hidden_gain * self.fc1(x))))

    def layer_groups(self) -> list[list[str]]:
        return [["fc1", "hidden_gain"], ["norm"], ["fc2"]]


def make_regression(n: int = 96, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    y = torch.tanh(x @ w) + 0.3 * x[:, :1] + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def make_mlp(d: int = 5, hidden: int = 16, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))


@pytest.fixture
def regression() -> tuple[torch.Tensor, torch.Tensor]:
    return make_regression()


@pytest.fixture
def mlp_factory():
    return make_mlp


@pytest.fixture
def gain_mlp_cls():
    return GainMLP
