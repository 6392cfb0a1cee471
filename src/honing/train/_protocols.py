"""The duck types the Trainer works with. ``train`` imports none of the packages that provide them."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Reporter(Protocol):
    """Receives the monitored value after every epoch and may ask to stop the run early.

    The tuning layer passes a wrapper around an Optuna trial; ``train`` never imports optuna.
    """

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


def report_epoch(reporter: Reporter, value: float, epoch: int) -> str | None:
    """The one pruning path: report ``value`` for ``epoch`` and return why the run should stop
    ("pruned at epoch N"), or None. The Trainer calls it after each epoch; code that runs
    several Trainers in lockstep (k-fold) calls it on the averaged curve."""
    reporter.report(value, epoch)
    return f"pruned at epoch {epoch}" if reporter.should_prune() else None


@runtime_checkable
class Schedule(Protocol):
    """A learning-rate schedule as ``honing.optim.create_schedule`` returns it."""

    monitor: str | None

    def step(self) -> None: ...

    def epoch_end(self, metric: float | None) -> None: ...

    def get_last_lr(self) -> list[float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class SplitLike(Protocol):
    """A data split: ``x`` (N, *input_shape) and ``y`` (N,) class indices or (N, K) targets."""

    x: torch.Tensor
    y: torch.Tensor


@runtime_checkable
class Augment(Protocol):
    """A batched transform of training batches with its own generator state."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
