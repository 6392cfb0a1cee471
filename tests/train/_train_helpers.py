"""Tiny stand-ins for honing.data / honing.optim pieces, so train's tests depend on neither."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from honing.train import Callback


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


def blobs(n: int = 240, features: int = 8, classes: int = 3, seed: int = 0, spread: float = 3.0) -> tuple[Split, Split]:
    """Gaussian blobs, well separated: a train and a val split."""
    g = torch.Generator().manual_seed(seed)
    centers = spread * torch.randn(classes, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, features, generator=g)
    cut = n * 3 // 4
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def linear_data(n: int = 200, features: int = 5, outputs: int = 2, seed: int = 0) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(features, outputs, generator=g)
    x = torch.randn(n, features, generator=g)
    y = x @ w + 0.05 * torch.randn(n, outputs, generator=g)  # (N, outputs)
    cut = n * 3 // 4
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def mlp(features: int = 8, outputs: int = 3, *, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, outputs))


class StepDecay:
    """Schedule stand-in: lr = base * gamma ** (steps // every), stepped per optimizer step."""

    monitor = None

    def __init__(self, optimizer: torch.optim.Optimizer, *, every: int, gamma: float) -> None:
        self.optimizer, self.every, self.gamma = optimizer, every, gamma
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.steps = 0
        self.epoch_end_calls: list[Any] = []

    def step(self) -> None:
        self.steps += 1
        for g, base in zip(self.optimizer.param_groups, self.base):
            g["lr"] = base * self.gamma ** (self.steps // self.every)

    def epoch_end(self, metric: float | None) -> None:
        self.epoch_end_calls.append(metric)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.base = state["steps"], list(state["base"])


class Plateau(StepDecay):
    """Schedule stand-in watching a metric: halves lr when it does not improve."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, monitor: str = "val_loss") -> None:
        super().__init__(optimizer, every=10**9, gamma=1.0)
        self.monitor = monitor
        self.best = float("inf")

    def step(self) -> None:
        self.steps += 1

    def epoch_end(self, metric: float | None) -> None:
        self.epoch_end_calls.append(metric)
        assert metric is not None
        if metric < self.best:
            self.best = metric
        else:
            for g in self.optimizer.param_groups:
                g["lr"] *= 0.5

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.best = state["steps"], state["best"]


class NoiseAugment:
    """Augment stand-in: adds Gaussian noise from its own generator."""

    def __init__(self, scale: float = 0.1, seed: int = 0) -> None:
        self.scale = scale
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return x + self.scale * torch.randn(x.shape, generator=self.generator), y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.calls = state["calls"]


class Recorder(Callback):
    """Records every hook call; its state (the number of epochs seen) survives a resume."""

    def __init__(self, *, batches: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.epochs_seen = 0
        if not batches:
            self.on_batch_end = Callback.on_batch_end.__get__(self)  # type: ignore[method-assign]

    def on_fit_start(self, trainer: Any) -> None:
        self.calls.append(("fit_start",))

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.calls.append(("epoch_start", epoch))

    def on_batch_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        self.calls.append(("batch_end", step))

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        self.epochs_seen += 1
        self.calls.append(("epoch_end", epoch, tuple(logs)))

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        self.calls.append(("fit_end", result.stop_reason))

    def state_dict(self) -> dict[str, Any]:
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_seen = state["epochs_seen"]


class InterruptAt(Callback):
    """Raises KeyboardInterrupt when ``epoch`` starts, like a user pressing Ctrl-C."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt
