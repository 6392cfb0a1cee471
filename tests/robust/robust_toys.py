"""Helpers of the robustness tests: digits in [0, 1] pixel units and a small MLP trainer."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn

from honing.robust import InputSpace
from honing.train import TrainConfig, Trainer


def digits_data() -> tuple[torch.Tensor, torch.Tensor, InputSpace]:
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)  # pixels in [0, 1]
    y = torch.tensor(d.target)
    mean, std = float(x.mean()), float(x.std())
    space = InputSpace(torch.tensor(std), torch.tensor(mean), torch.tensor(0.0), torch.tensor(1.0), None, "pixels")
    return (x - mean) / std, y, space


def train_mlp(x: torch.Tensor, y: torch.Tensor, *, step=None, epochs: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    config = TrainConfig(epochs=epochs, batch_size=64, seed=seed, keep_best=False, monitor="loss")
    Trainer(model, opt, loss="cross_entropy", task="classification", config=config, step=step).fit((x, y))
    return model
