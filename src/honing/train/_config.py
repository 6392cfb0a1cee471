"""The Trainer's frozen configuration and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from honing._core import ConfigError, check_choice, check_int, check_number

PRECISIONS = ("32", "bf16", "16")
_PRECISION_ALIASES = {32: "32", 16: "16", "fp32": "32", "float32": "32", "fp16": "16", "float16": "16",
                      "bfloat16": "bf16"}


def resolve_precision(value: Any) -> Any:
    """A precision spelled any accepted way (32, "fp16", "bfloat16", ...) -> "32", "16" or "bf16";
    anything else is returned unchanged (the caller reports it)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return _PRECISION_ALIASES.get(value, value)
    return value


def _check_bool(name: str, value: Any, *, allow_none: bool = False) -> None:
    if isinstance(value, bool) or (allow_none and value is None):
        return
    allowed = "True, False or None (auto)" if allow_none else "True or False"
    raise ConfigError(f"invalid {name} in TrainConfig: got {value!r}; allowed: {allowed}")


def check_device(value: Any) -> torch.device:
    """A torch device from a string such as "cpu", "cuda", "cuda:1", "mps"."""
    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"invalid device in TrainConfig: got {value!r}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'") from None


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is checked when the config is built.

    ``batch_size=None`` trains full-batch (one step per epoch over all rows). ``accumulate``
    sums gradients over that many batches before each optimizer step (the loss is divided by
    the group's batch count, so with a mean loss, ``batch_size=16, accumulate=2`` matches
    ``batch_size=32``). ``seed`` seeds the batch order (its own ``torch.Generator``) and, at the
    start of a fresh run, torch's global generator (``torch.manual_seed``) so dropout is
    reproducible. ``mode="auto"`` maximizes accuracy/f1/precision/recall/r2, minimizes the
    rest. ``precision`` "bf16"/"16" runs forward passes under ``torch.autocast`` (with a
    GradScaler for "16" on CUDA).
    """

    epochs: int = 10
    batch_size: int | None = 32
    eval_batch_size: int = 256  # 1024 held ~150 MB more at peak on the Fashion-MNIST CNN, and was slower
    shuffle: bool = True
    drop_last: bool = False
    grad_clip_norm: float | None = None
    grad_clip_value: float | None = None
    accumulate: int = 1
    seed: int = 0
    threads: int | None = None
    progress: bool | None = None
    monitor: str = "val_loss"
    mode: str = "auto"
    keep_best: bool = False
    device: str = "cpu"
    precision: str = "32"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        where = "TrainConfig"
        check_int("epochs", self.epochs, low=1, where=where)
        check_int("batch_size", self.batch_size, low=1, allow_none=True, where=where)
        check_int("eval_batch_size", self.eval_batch_size, low=1, where=where)
        _check_bool("shuffle", self.shuffle)
        _check_bool("drop_last", self.drop_last)
        for name in ("grad_clip_norm", "grad_clip_value"):
            check_number(name, getattr(self, name), low=0.0, low_inclusive=False, allow_none=True, where=where)
        if self.grad_clip_norm is not None and self.grad_clip_value is not None:
            raise ConfigError(
                f"invalid grad_clip_value in TrainConfig: got {self.grad_clip_value!r} together with "
                f"grad_clip_norm={self.grad_clip_norm!r}; allowed: set one of them, not both"
            )
        check_int("accumulate", self.accumulate, low=1, where=where)
        check_int("seed", self.seed, low=0, where=where)
        check_int("threads", self.threads, low=1, allow_none=True, where=where)
        _check_bool("progress", self.progress, allow_none=True)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(f"invalid monitor in TrainConfig: got {self.monitor!r}; allowed: a log key such as 'val_loss', 'val_accuracy', 'loss'")
        check_choice("mode", self.mode, ("auto", "min", "max"), where=where)
        _check_bool("keep_best", self.keep_best)
        if not isinstance(self.device, (str, torch.device)):
            raise ConfigError(f"invalid device in TrainConfig: got {self.device!r}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'")
        check_device(self.device)
        precision = resolve_precision(self.precision)
        check_choice("precision", precision, PRECISIONS, where=where)
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "device", str(self.device))
        check_int("checkpoint_every", self.checkpoint_every, low=1, where=where)

    def batches_per_epoch(self, num_samples: int) -> int:
        if self.batch_size is None:
            return 1
        if self.drop_last:
            return num_samples // self.batch_size
        return math.ceil(num_samples / self.batch_size)

    def steps_per_epoch(self, num_samples: int) -> int:
        """Optimizer steps per epoch on ``num_samples`` training rows (for building schedules)."""
        return math.ceil(self.batches_per_epoch(num_samples) / self.accumulate)


@dataclass
class FitResult:
    """What ``Trainer.fit`` returns.

    ``history`` has one dict per epoch: epoch, loss (sample-weighted mean training loss), lr
    (at the epoch's start), time (seconds in training steps), val_loss and val_<metric>.
    ``stop_reason``: "completed N epochs", an early-stopping reason, "pruned at epoch N", or
    the reason a callback gave to ``trainer.request_stop``.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    monitor: str = "val_loss"
    stop_reason: str = ""
    epochs_run: int = 0
    global_step: int = 0
    pruned: bool = False

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's logs (empty when no epoch ran)."""
        return self.history[-1] if self.history else {}
