"""Ensembles from one training run: snapshots and stochastic weight averaging.

- ``SnapshotEnsemble`` (Huang et al., "Snapshot ensembles: train 1, get M for free", ICLR
  2017): the learning rate follows ``cycles`` cosine cycles, restarting at ``lr_max`` each;
  the weights at the end of each cycle (a low-learning-rate minimum) are kept, and
  ``ensemble()`` averages the snapshots' probabilities as one ``EnsembleModel``.
- ``StochasticWeightAveraging`` (Izmailov et al., "Averaging weights leads to wider optima and
  better generalization", UAI 2018): from ``start`` on, the weights at each epoch's end are
  averaged (torch.optim.swa_utils.AveragedModel); at the end the model takes the average and
  its batch-norm statistics are recomputed on ``bn_data``. One model, no extra inference cost.

Both are Trainer callbacks with state (a resumed run continues them).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch

from honing._core import ConfigError, check_int
from honing.ensemble._model import EnsembleModel
from honing.train import Callback

if TYPE_CHECKING:
    from honing.train import Trainer


def _set_lr(trainer: Trainer, lr: float) -> None:
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr


class SnapshotEnsemble(Callback):
    """``cycles`` cosine cycles over the run's ``epochs`` (the learning rate set at each epoch's
    start: ``lr_max / 2 * (1 + cos(pi * t / T))``, ``t`` the epoch within its cycle of ``T``);
    a snapshot of the weights at each cycle's end. Use it without another schedule."""

    def __init__(self, *, epochs: int, cycles: int, lr_max: float) -> None:
        self.epochs = int(check_int("epochs", epochs, low=1))
        self.cycles = int(check_int("cycles", cycles, low=1, high=self.epochs))
        if not lr_max > 0:
            raise ConfigError(f"invalid lr_max: got {lr_max}; allowed: > 0")
        self.lr_max = float(lr_max)
        self.length = self.epochs / self.cycles
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def lr_at(self, epoch: int) -> float:
        t = ((epoch - 1) % self.length) / self.length  # position in the cycle, [0, 1)
        return self.lr_max / 2 * (1 + math.cos(math.pi * t))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        _set_lr(trainer, self.lr_at(epoch))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if math.floor(epoch / self.length + 1e-9) > math.floor((epoch - 1) / self.length + 1e-9):  # a cycle ends
            self.snapshots.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    def ensemble(self, model: torch.nn.Module, *, task: str) -> EnsembleModel:
        """The snapshots as one model: copies of ``model`` with each snapshot's weights, equal weights."""
        if not self.snapshots:
            raise ConfigError("no snapshot yet: the run ended before its first cycle did")
        members = []
        for state in self.snapshots:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            members.append(m.eval())
        return EnsembleModel(members, task=task, weights=[1 / len(members)] * len(members)).eval()

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state.get("snapshots") or [])


class StochasticWeightAveraging(Callback):
    """Average the weights of every epoch from ``start`` (an epoch number, or a fraction of
    ``epochs`` when below 1); ``lr``: the constant learning rate of those epochs (None: the
    run's own schedule). ``bn_data``: inputs to recompute batch-norm statistics on at the end."""

    def __init__(self, *, epochs: int, start: float = 0.75, lr: float | None = None,
                 bn_data: torch.Tensor | None = None, batch_size: int = 256) -> None:
        self.epochs = int(check_int("epochs", epochs, low=1))
        if not start > 0:
            raise ConfigError(f"invalid start: got {start}; allowed: an epoch (>= 1) or a fraction of the epochs (< 1)")
        self.start = max(1, int(math.ceil(start * self.epochs))) if start < 1 else int(start)
        if self.start > self.epochs:
            raise ConfigError(f"invalid start: epoch {self.start} is after the run's last ({self.epochs})")
        if lr is not None and not lr > 0:
            raise ConfigError(f"invalid lr: got {lr}; allowed: > 0 or None")
        self.lr, self.bn_data, self.batch_size = lr, bn_data, batch_size
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None
        self.count = 0
        self._pending: dict[str, torch.Tensor] | None = None  # a resumed run's average, loaded at the next epoch

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if self.lr is not None and epoch >= self.start:
            _set_lr(trainer, self.lr)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch < self.start:
            return
        if self.averaged is None:
            self.averaged = torch.optim.swa_utils.AveragedModel(trainer.model)
            if self._pending is not None:  # resumed: the average so far
                self.averaged.load_state_dict(self._pending)
                self._pending = None
        self.averaged.update_parameters(trainer.model)
        self.count += 1

    def on_fit_end(self, trainer: Trainer, result: Any) -> None:
        if self.averaged is None:
            return
        trainer.model.load_state_dict(self.averaged.module.state_dict())
        if self.bn_data is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                            for m in trainer.model.modules()):
            loader = [x for x in self.bn_data.split(self.batch_size)]
            torch.optim.swa_utils.update_bn(loader, trainer.model)
        trainer.model.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count,
                "averaged": None if self.averaged is None else {k: v.detach().clone()
                                                                for k, v in self.averaged.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self._pending = state.get("averaged")
