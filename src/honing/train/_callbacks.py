"""Callbacks: typed no-op hooks with state, and early stopping.

The Trainer calls, in order: ``on_fit_start`` once; per epoch ``on_epoch_start``, then
``on_batch_end`` after every batch (only for callbacks that override it, so an empty callback
list costs nothing per step), then ``on_epoch_end`` after validation with the epoch's logs;
``on_fit_end`` once with the result. A callback stops training with
``trainer.request_stop(reason)``; the reason becomes ``FitResult.stop_reason``.
``state_dict``/``load_state_dict`` let a resumed run continue where the checkpoint left it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from honing._core import ConfigError, check_choice, check_int, check_number
from honing.train._metrics import resolve_mode

if TYPE_CHECKING:
    from honing.train._config import FitResult
    from honing.train._trainer import Trainer

HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Once, before the first epoch (also when resuming, before the state is restored)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the epoch's first batch; ``epoch`` counts from 1."""

    def on_batch_start(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Before every training batch's forward pass (after augmentation), with the model at
        hand (``trainer.model``): return ``(x, y)`` to train on another batch (adversarial
        examples, a curriculum, ...), or None to keep it."""

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        """After every training batch; ``step`` is ``trainer.global_step`` (optimizer steps so far)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """After training and validation; ``logs`` holds loss, lr, time and ``val_*`` values."""

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        """Once, with the result, after best weights were restored and the optimizer finalized."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def overrides(callback: object, hook: str) -> bool:
    """Whether ``callback`` does something in ``hook`` (a method other than the base no-op)."""
    method = getattr(callback, hook, None)
    if method is None:
        return False
    func = getattr(method, "__func__", method)
    return func is not getattr(Callback, hook)


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda t, e, logs: print(logs))``."""

    def __init__(self, **hooks: Callable[..., None]) -> None:
        unknown = sorted(set(hooks) - set(HOOKS))
        if unknown:
            raise ConfigError(f"invalid LambdaCallback hook(s) {unknown}; allowed: {', '.join(HOOKS)}")
        for name, fn in hooks.items():
            if not callable(fn):
                raise ConfigError(f"invalid LambdaCallback {name}: got {fn!r}; allowed: a callable")
            setattr(self, name, fn)  # an instance attribute, so `overrides` sees it


@dataclass(frozen=True)
class StoppingState:
    best: float
    best_epoch: int
    wait: int


def stopping_decision(
    state: StoppingState,
    value: float,
    epoch: int,
    *,
    monitor: str,
    mode: str,
    patience: int,
    min_delta: float,
    check_finite: bool,
) -> tuple[StoppingState, bool, str]:
    """Pure early-stopping rule: the new state, whether to stop, and why.

    An improvement is ``value < best - min_delta`` (mode min) or ``value > best + min_delta``
    (mode max). Stop after ``patience`` epochs in a row without one, or at once on a
    non-finite value when ``check_finite``.
    """
    best_text = f"best {state.best:.4g} at epoch {state.best_epoch}" if state.best_epoch > 0 else "no best yet"
    if check_finite and not math.isfinite(value):
        return state, True, f"early stopping: {monitor} is {value} at epoch {epoch} ({best_text})"
    improved = value < state.best - min_delta if mode == "min" else value > state.best + min_delta
    if improved:
        return StoppingState(value, epoch, 0), False, ""
    wait = state.wait + 1
    if wait < patience:
        return StoppingState(state.best, state.best_epoch, wait), False, ""
    by = f" by more than {min_delta:g}" if min_delta > 0 else ""
    reason = f"early stopping: {monitor} did not improve{by} for {wait} epoch{'s' if wait != 1 else ''} ({best_text})"
    return StoppingState(state.best, state.best_epoch, wait), True, reason


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode="auto"`` maximizes accuracy/f1/precision/recall/r2 and minimizes anything else.
    The reason, e.g. "early stopping: val_accuracy did not improve by more than 0.001 for 5
    epochs (best 0.9712 at epoch 7)", is recorded in ``FitResult.stop_reason``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "auto",
        patience: int = 10,
        min_delta: float = 0.0,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"invalid monitor in EarlyStopping: got {monitor!r}; allowed: a log key such as 'val_loss'")
        check_choice("mode", mode, ("auto", "min", "max"), where="EarlyStopping")
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.patience = check_int("patience", patience, low=1, where="EarlyStopping")
        self.min_delta = check_number("min_delta", min_delta, low=0.0, where="EarlyStopping")
        self.check_finite = bool(check_finite)
        self.state = self._initial_state()
        self.stop_reason = ""

    def _initial_state(self) -> StoppingState:
        return StoppingState(math.inf if self.mode == "min" else -math.inf, 0, 0)

    def check(self, value: float, epoch: int) -> tuple[bool, str]:
        """Update the state with this epoch's value; (stop, reason)."""
        self.state, stop, reason = stopping_decision(
            self.state, float(value), epoch, monitor=self.monitor, mode=self.mode,
            patience=self.patience, min_delta=self.min_delta, check_finite=self.check_finite,
        )
        if stop:
            self.stop_reason = reason
        return stop, reason

    def on_fit_start(self, trainer: Trainer) -> None:
        self.state, self.stop_reason = self._initial_state(), ""
        keys = getattr(trainer, "log_keys", None)
        if keys is not None and self.monitor not in keys:
            raise _missing_key(self.monitor, keys)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise _missing_key(self.monitor, logs)
        stop, reason = self.check(logs[self.monitor], epoch)
        if stop:
            trainer.request_stop(reason)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.state.best, "best_epoch": self.state.best_epoch, "wait": self.state.wait,
                "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = StoppingState(float(state["best"]), int(state["best_epoch"]), int(state["wait"]))
        self.stop_reason = str(state.get("stop_reason", ""))


def _missing_key(monitor: str, keys: Any) -> ConfigError:
    return ConfigError(
        f"invalid monitor in EarlyStopping: {monitor!r} is not among the epoch logs; available: "
        f"{', '.join(repr(k) for k in keys)} (val_* keys need a validation split)"
    )
