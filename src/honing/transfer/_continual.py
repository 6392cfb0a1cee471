"""Continual fine-tuning: learn a new task without forgetting the old one.

The setting is task-incremental: the backbone comes from a honing model of the old task,
whose output layer is kept (``TransferModel.old_task``); the new task gets a new head. How much
the shared backbone forgets is the old task's score through the old head, before and after.

- :class:`EWC` (Kirkpatrick et al., 2017, "Overcoming catastrophic forgetting in neural
  networks"): a penalty ``lambda / 2 * sum_i F_i (theta_i - theta*_i)^2`` with ``F`` the
  diagonal empirical Fisher information of the old task at the old weights ``theta*``.
- :class:`Replay`: a stored sample of old examples; each step adds the old task's loss on a
  batch of them (through the old head).
- :class:`ContinualLoss` adds both to the new task's loss during training (not in evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError
from honing.transfer._backbones import device_of


def _named_trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """A TransferModel's backbone parameters; every parameter of any other model."""
    backbone = getattr(model, "backbone", None)
    module = getattr(backbone, "module", None)
    return dict((module if isinstance(module, nn.Module) else model).named_parameters())


def _old_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The old task's outputs: a TransferModel's old head; any other model's own forward (the
    same task, new data: a refit)."""
    old_task = getattr(model, "old_task", None)
    return old_task(x) if callable(old_task) else model(x)


class EWC:
    """Elastic weight consolidation on the backbone's parameters (computed at construction).

    Args:
        model: a TransferModel whose backbone holds the old task's weights (and ``old_head``),
            or any model whose current weights are the old task's (all its parameters anchored).
        x, y: old-task training examples (labels of the old head's classes).
        loss: the old task's loss (default cross-entropy; mean squared error for regression).
        batch_size: rows per gradient for the Fisher estimate (mean of squared batch gradients,
            scaled by the batch size so it estimates the per-example Fisher).
        max_rows: use at most this many rows (seeded).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 32,
                 max_rows: int | None = 2000, seed: int = 0,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy) -> None:
        if max_rows is not None and len(y) > max_rows:
            idx = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False)))
            x, y = x[idx], y[idx]
        params = _named_trainable(model)
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was = model.training
        model.eval()
        flags = {n: p.requires_grad for n, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        batches = 0
        for i in range(0, len(y), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            model.zero_grad(set_to_none=True)
            loss(_old_outputs(model, xb), yb).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2 * len(yb)
            batches += 1
        for n, p in params.items():
            p.requires_grad_(flags[n])
            p.grad = None
        model.train(was)
        self.fisher = {n: f / max(batches, 1) for n, f in fisher.items()}
        self.anchor = {n: p.detach().clone() for n, p in params.items()}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``sum_i F_i (theta_i - theta*_i)^2`` over the backbone (without the lambda / 2)."""
        total: torch.Tensor | None = None
        for n, p in _named_trainable(model).items():
            if p.requires_grad and n in self.fisher:
                if self.fisher[n].device != p.device:  # the Trainer moved the model after EWC was built
                    self.fisher[n], self.anchor[n] = self.fisher[n].to(p.device), self.anchor[n].to(p.device)
                term = (self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
                total = term if total is None else total + term
        return torch.zeros(()) if total is None else total


class Replay:
    """A stored sample of ``size`` old-task examples; ``loss(model)`` is the old head's loss on a
    batch of ``batch_size`` of them drawn with the Replay's own generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, size: int = 500, batch_size: int = 32, seed: int = 0) -> None:
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"invalid replay: got {size!r}; allowed: an int >= 1 (old examples to store)")
        rng = np.random.default_rng(seed)
        idx = torch.as_tensor(np.sort(rng.choice(len(y), min(size, len(y)), replace=False)))
        self.x, self.y = x[idx].clone(), y[idx].clone()
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, model: nn.Module) -> torch.Tensor:
        idx = torch.randint(len(self.y), (min(self.batch_size, len(self.y)),), generator=self.generator)
        device = device_of(model)
        return F.cross_entropy(model.old_task(self.x[idx].to(device)), self.y[idx].to(device))


class ContinualLoss:
    """``loss(pred, target) + ewc / 2 * EWC.penalty + replay_weight * Replay.loss`` while the model
    trains; the plain loss in evaluation. Pass it as the Trainer's ``loss``."""

    def __init__(self, base: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model: nn.Module, *,
                 ewc: EWC | None = None, ewc_lambda: float = 0.0, replay: Replay | None = None,
                 replay_weight: float = 1.0) -> None:
        if ewc_lambda < 0 or replay_weight < 0:
            raise ConfigError(f"invalid weights: ewc={ewc_lambda}, replay_weight={replay_weight}; allowed: >= 0")
        self.base, self.model = base, model
        self.ewc, self.ewc_lambda = ewc, float(ewc_lambda)
        self.replay, self.replay_weight = replay, float(replay_weight)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.base(pred, target)
        if not (self.model.training and torch.is_grad_enabled()):
            return loss
        if self.ewc is not None and self.ewc_lambda:
            loss = loss + 0.5 * self.ewc_lambda * self.ewc.penalty(self.model)
        if self.replay is not None and self.replay_weight:
            loss = loss + self.replay_weight * self.replay.loss(self.model)
        return loss


@torch.no_grad()
def old_task_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512) -> float:
    """Accuracy of the old head on ``(x, y)`` through the current backbone."""
    was = model.training
    model.eval()
    try:
        device = device_of(model)
        pred = torch.cat([model.old_task(x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(y), batch_size)])
    finally:
        model.train(was)
    return float((pred == y.cpu()).float().mean())


def forgetting(before: float, after: float) -> dict[str, Any]:
    """The old task's score before and after fine-tuning, and the drop (points of accuracy)."""
    return {"before": round(before, 6), "after": round(after, 6), "forgetting": round(before - after, 6)}
