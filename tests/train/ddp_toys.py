"""Picklable trainer factories for the data-parallel tests (imported by the spawned ranks)."""

from __future__ import annotations

import os

import torch
from torch import nn

from honing.train import Trainer, TrainConfig


def data(rows: int = 201, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


class MakeTrainer:
    """The same small MLP and config on every rank (no dropout, no batch norm)."""

    def __init__(self, *, batch_size: int = 64, epochs: int = 3, crash_rank: int | None = None,
                 stop_rank: int | None = None, hang_rank: int | None = None) -> None:
        self.batch_size, self.epochs = batch_size, epochs
        self.crash_rank, self.stop_rank, self.hang_rank = crash_rank, stop_rank, hang_rank

    def __call__(self, rank: int = 0) -> Trainer:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        callbacks = []
        if rank == self.crash_rank:
            callbacks.append(_CrashAt(2))
        if rank == self.stop_rank:
            callbacks.append(_StopAt(2))
        if rank == self.hang_rank:
            callbacks.append(_HangAt(2))
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=0, keep_best=False, monitor="loss")
        return Trainer(model, opt, loss="cross_entropy", task="classification", callbacks=callbacks, config=config)


class _CrashAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch:
            os._exit(3)  # a hard crash: no exception, no message


class _StopAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            trainer.request_stop("stopped on this rank only")


class _HangAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch:
            import time

            time.sleep(3600)  # alive but never joins the next collective
