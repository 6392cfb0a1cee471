"""Boosting of small networks.

- Classification, SAMME (Zhu, Zou, Rosset & Hastie, "Multi-class AdaBoost", 2009): each round
  trains a network on the rows drawn by the current row weights (boosting by resampling),
  with error ``err`` on the weighted rows gets ``alpha = log((1 - err) / err) + log(K - 1)``,
  and the rows it got wrong have their weights multiplied by ``exp(alpha)``. The model's
  output is each class's summed ``alpha`` of the rounds that predicted it (a vote; argmax is
  the SAMME prediction).
- Regression, gradient boosting on residuals (Friedman 2001, squared loss): start from the
  mean; each round fits a network to the residuals of the sum so far, added with
  ``shrinkage``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_int


class BoostedModel(nn.Module):
    """SAMME votes (classification) or ``bias + shrinkage * sum(members)`` (regression)."""

    def __init__(self, members: list[nn.Module], *, task: str, alphas: list[float] | None = None,
                 bias: torch.Tensor | None = None, shrinkage: float = 1.0, num_classes: int | None = None) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ConfigError(f"invalid task: got {task!r}; allowed: classification, regression")
        self.task = task
        self.members = nn.ModuleList(members)
        if task == "classification":
            if alphas is None or len(alphas) != len(members) or num_classes is None:
                raise ConfigError("a SAMME model needs one alpha per member and num_classes")
            self.register_buffer("alphas", torch.tensor(alphas, dtype=torch.float32))
            self.register_buffer("classes", torch.arange(int(num_classes)))
        else:
            self.register_buffer("bias", torch.zeros(1) if bias is None else bias.detach().float().reshape(-1))
            self.shrinkage = float(shrinkage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            votes = None
            for alpha, m in zip(self.alphas, self.members):
                hit = (m(x).argmax(-1, keepdim=True) == self.classes).float() * alpha  # (N, K)
                votes = hit if votes is None else votes + hit
            return votes
        out = self.bias
        for m in self.members:
            out = out + self.shrinkage * m(x)
        return out


@dataclass
class BoostResult:
    model: BoostedModel
    rounds: list[dict[str, float]] = field(default_factory=list)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, task: str, epochs: int, lr: float,
           batch_size: int, seed: int) -> None:
    from honing.train import TrainConfig, Trainer

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = "cross_entropy" if task == "classification" else "mse"
    Trainer(model, opt, loss=loss, task=task, config=TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed,
                                                                 progress=False)).fit((x, y))
    model.eval()


def boost(make_model: Callable[[int], nn.Module], x: torch.Tensor, y: torch.Tensor, *, task: str, rounds: int = 5,
          epochs: int = 10, lr: float = 1e-2, batch_size: int = 64, shrinkage: float = 0.5, seed: int = 0,
          train: Callable[..., Any] | None = None) -> BoostResult:
    """Boost ``rounds`` networks made by ``make_model(seed)`` on ``(x, y)``: SAMME for
    classification (``y`` class indices), gradient boosting on residuals for regression (``y``
    ``(N, k)`` values). ``train(model, x, y, seed=...)`` trains one (default: Adam for
    ``epochs`` epochs at ``lr``)."""
    if task not in ("classification", "regression"):
        raise ConfigError(f"invalid task: got {task!r}; allowed: classification, regression")
    rounds = int(check_int("rounds", rounds, low=1))
    fit = train or (lambda m, xs, ys, seed: _train(m, xs, ys, task=task, epochs=epochs, lr=lr,
                                                   batch_size=batch_size, seed=seed))
    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    members: list[nn.Module] = []
    history: list[dict[str, float]] = []
    if task == "classification":
        k = int(y.max()) + 1
        w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        alphas: list[float] = []
        for r in range(rounds):
            rows = torch.multinomial(w, n, replacement=True, generator=gen)  # boosting by resampling
            model = make_model(seed + r)
            fit(model, x[rows], y[rows], seed=seed + r)
            with torch.no_grad():
                wrong = (model(x).argmax(-1) != y).double()
            err = float((w * wrong).sum() / w.sum())
            if err >= 1 - 1 / k:  # no better than chance on the weighted rows: stop
                history.append({"round": r, "error": err, "alpha": 0.0, "kept": 0.0})
                break
            err = max(err, 1e-10)
            alpha = math.log((1 - err) / err) + math.log(k - 1)
            members.append(model)
            alphas.append(alpha)
            history.append({"round": r, "error": err, "alpha": alpha, "kept": 1.0})
            w = w * torch.exp(alpha * wrong)
            w = w / w.sum()
        if not members:
            raise ConfigError("boosting kept no round: the first network was no better than chance on the rows")
        return BoostResult(BoostedModel(members, task=task, alphas=alphas, num_classes=k), history)
    target = y.float().reshape(n, -1)
    bias = target.mean(0)
    current = bias.expand_as(target).clone()
    for r in range(rounds):
        residual = target - current
        model = make_model(seed + r)
        fit(model, x, residual, seed=seed + r)
        with torch.no_grad():
            current = current + shrinkage * model(x).reshape(n, -1)
        members.append(model)
        history.append({"round": r, "train_mse": float(((target - current) ** 2).mean())})
    return BoostResult(BoostedModel(members, task=task, bias=bias, shrinkage=shrinkage), history)
