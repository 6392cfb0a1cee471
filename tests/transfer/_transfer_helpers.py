"""Tiny backbones, toy data and a short training run shared by the transfer tests."""

from __future__ import annotations

import torch
from torch import nn

from honing.optim import create_optimizer
from honing.train import TrainConfig, Trainer


def tiny_backbone(d_in: int = 6, width: int = 8, seed: int = 0) -> nn.Module:
    """Three blocks (children "0", "1", "2"); the first two hold a BatchNorm1d."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU()),
        nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()),
        nn.Sequential(nn.Linear(width, width), nn.ReLU()),
    )


def toy_classes(n: int = 48, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.arange(n) % classes
    x[:, 0] += 2.0 * y  # learnable, but not instantly
    return x, y


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (batch-norm statistics included), cloned."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], *, callbacks=(), epochs: int = 2,
        lr: float = 1e-2, weight_decay: float = 0.1) -> Trainer:
    opt = create_optimizer(model, "adamw", lr=lr, weight_decay=weight_decay)
    trainer = Trainer(model, opt, callbacks=list(callbacks),
                      config=TrainConfig(epochs=epochs, batch_size=16, progress=False, seed=0))
    trainer.fit(data)
    return trainer
