"""The ``Schedule`` contract: per-step learning rates as a multiplier of per-group base lrs.

``lr_g(step) = base_lr_g * warmup(step) * factor(step)`` where ``factor`` is a pure function of
the step (nanoGPT's ``get_lr`` style) and ``warmup(step)`` rises linearly from
``warmup_start_factor`` (default 0) at step 0 to 1 at ``warmup_steps``. Multiplying per-group
base lrs keeps their ratios (layer-wise decay). ``ReduceOnPlateau`` replaces ``factor`` by a
per-group scale that ``epoch_end(metric)`` reduces.

The base lrs are the groups' ``initial_lr`` (set from ``lr`` the first time, as torch's
schedulers do), so building a second schedule on the same optimizer starts from the same base.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from honing._core import ConfigError, HoningError, check_choice, check_int, check_number


@dataclass(frozen=True)
class ScheduleTiming:
    """Run length and warm-up, in optimizer steps."""

    epochs: int
    steps_per_epoch: int
    warmup_steps: int = 0
    warmup_start_factor: float = 0.0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def epochs_to_steps(self, name: str, epochs: Any) -> int:
        """Convert a position given in epochs (int or float) to optimizer steps."""
        value = check_number(name, epochs, low=0.0)
        assert value is not None
        return int(round(value * self.steps_per_epoch))


class Schedule:
    """Learning-rate schedule driven by the Trainer.

    Call ``step()`` after every optimizer step and ``epoch_end(metric)`` after each epoch's
    validation. ``monitor`` names the metric ``epoch_end`` needs (None: no metric needed).
    """

    monitor: str | None = None

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        factor: Callable[[int], float],
        timing: ScheduleTiming,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(f"invalid optimizer: got {type(optimizer).__name__}; allowed: a torch.optim.Optimizer")
        self.optimizer = optimizer
        self.name = name
        self.timing = timing
        self._factor = factor
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.last_step = 0
        self.epoch = 0
        self._last_lr: list[float] = []
        self._apply()

    @property
    def total_steps(self) -> int:
        return self.timing.total_steps

    @property
    def warmup_steps(self) -> int:
        return self.timing.warmup_steps

    def warmup_factor(self, step: int) -> float:
        w = self.timing.warmup_steps
        if w <= 0 or step >= w:
            return 1.0
        start = self.timing.warmup_start_factor
        return start + (1.0 - start) * step / w

    def lr_at(self, step: int) -> list[float]:
        """The learning rates of every param group at ``step`` (no side effects)."""
        f = self.warmup_factor(step) * self._factor(step)
        return [base * f for base in self.base_lrs]

    def _apply(self) -> None:
        lrs = self.lr_at(self.last_step)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def step(self) -> None:
        """Advance one optimizer step and set the groups' lrs for the next one."""
        self.last_step += 1
        self._apply()

    def epoch_end(self, metric: float | None = None) -> None:
        """Called after each epoch's validation with the monitored metric (ignored here)."""
        self.epoch += 1

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "last_step": self.last_step, "epoch": self.epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise HoningError(f"cannot load schedule state of {state.get('name')!r} into a {self.name!r} schedule")
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise HoningError(
                f"schedule state has {len(state['base_lrs'])} param groups, the optimizer has "
                f"{len(self.optimizer.param_groups)}"
            )
        self.last_step = int(state["last_step"])
        self.epoch = int(state["epoch"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, step={self.last_step}, lr={self._last_lr})"


class ReduceOnPlateau(Schedule):
    """Multiply the lrs by ``factor`` when ``monitor`` stops improving for ``patience`` epochs.

    Same rules as ``torch.optim.lr_scheduler.ReduceLROnPlateau``: an epoch improves when the metric
    beats the best by ``threshold`` (relative or absolute); after more than ``patience`` epochs
    without improvement each group's lr is reduced (not below ``min_lr``) and ``cooldown`` epochs
    pass before counting again. Composes with warm-up (the warm-up multiplies the current lrs).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        timing: ScheduleTiming,
        *,
        monitor: str = "val_loss",
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
    ) -> None:
        where = "schedule 'plateau'"
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"invalid monitor in {where}: got {monitor!r}; allowed: a metric name such as 'val_loss'")
        self.monitor = monitor
        self.mode = check_choice("mode", mode, ["min", "max"], where=where)
        self.factor = check_number("factor", factor, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False, where=where)
        self.patience = check_int("patience", patience, low=0, where=where)
        self.threshold = check_number("threshold", threshold, low=0.0, where=where)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ["rel", "abs"], where=where)
        self.cooldown = check_int("cooldown", cooldown, low=0, where=where)
        n = len(optimizer.param_groups)
        mins = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(mins) != n:
            raise ConfigError(f"invalid min_lr in {where}: got {len(mins)} values; allowed: one or {n} (one per group)")
        self.min_lrs = [check_number("min_lr", m, low=0.0, where=where) for m in mins]
        self.scales = [1.0] * n
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer, "plateau", lambda s: 1.0, timing)

    def lr_at(self, step: int) -> list[float]:
        w = self.warmup_factor(step)
        return [base * scale * w for base, scale in zip(self.base_lrs, self.scales)]

    def _improved(self, value: float) -> bool:
        if self.threshold_mode == "rel":
            margin = abs(self.best) * self.threshold if math.isfinite(self.best) else 0.0
        else:
            margin = self.threshold
        return value < self.best - margin if self.mode == "min" else value > self.best + margin

    def epoch_end(self, metric: float | None = None) -> None:
        if metric is None:
            raise ConfigError(
                f"invalid metric for schedule 'plateau': got None; allowed: the value of {self.monitor!r} "
                "(the plateau schedule needs validation data or a monitored metric)"
            )
        super().epoch_end(metric)
        value = float(metric)
        if self._improved(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, base in enumerate(self.base_lrs):
                floor = self.min_lrs[i] / base if base > 0 else 0.0
                new = max(self.scales[i] * self.factor, floor)
                if new < self.scales[i]:
                    self.scales[i] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            self._apply()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            scales=list(self.scales), best=self.best, num_bad_epochs=self.num_bad_epochs,
            cooldown_counter=self.cooldown_counter,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.scales = [float(s) for s in state["scales"]]
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self._apply()
