"""The training loop.

``Trainer.fit`` runs epochs over pre-built tensors: each epoch draws a permutation from the
Trainer's own ``torch.Generator`` (seeded with ``config.seed``; batch ``i`` of an epoch is
``perm[i * B:(i + 1) * B]`` with ``perm = torch.randperm(N, generator=g)``), slices the data
(moved to the device once), and per batch: the step policy's forward and loss, a finite check,
then its backward, which every ``accumulate`` batches clips / steps the optimizer / zero_grads /
steps the schedule (``honing.train._steps``: plain, accumulate, AMP, closure). After the epoch:
validation, logs, schedule ``epoch_end``, best-epoch tracking, the reporter, callbacks, the
checkpoint. Everything else hangs off callbacks. A fresh run calls
``torch.manual_seed(config.seed)`` before the first epoch so dropout is reproducible; a
resumed run restores all generator states instead, and ends with bit-identical weights (CPU).

The per-step path is kept lean on purpose (no dict building, one ``.item()`` on CPU for the
finite check, no hooks unless a callback overrides ``on_batch_end``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from honing._core import (
    ConfigError,
    DivergedError,
    capture_rng_state,
    check_choice,
    restore_rng_state,
    set_threads,
)
from honing.train._batching import Data, as_tensors, epoch_batches
from honing.train._callbacks import HOOKS, overrides
from honing.train._checkpoint import has_checkpoint, load_checkpoint, match_callbacks, save_checkpoint
from honing.train._config import FitResult, TrainConfig, check_device
from honing.train._losses import LossFn, create_loss, default_loss
from honing.train._metrics import TASKS, MetricFn, resolve_metrics, resolve_mode
from honing.train._protocols import Reporter, report_epoch
from honing.train._steps import StepPolicy, default_step

__all__ = ["FitResult", "TrainConfig", "Trainer"]

_HALF = {"bf16": torch.bfloat16, "16": torch.float16}


class Trainer:
    """Trains ``model`` with ``optimizer``; see the module docstring for the loop.

    ``loss``: a name from ``list_losses()`` or a callable ``(pred, target)``; None picks
    cross_entropy (classification) or mse (regression). ``metrics``: names/callables, or None
    for the task's defaults. ``schedule``, ``augment``, ``reporter``: duck-typed (see
    ``honing.train._protocols``). ``step``: a step policy (``honing.train.StepPolicy``); None
    picks one from the config and optimizer: optimizers that need a closure
    (``torch.optim.LBFGS`` or ``needs_closure = True``) get one that recomputes loss and
    gradients, float16 on CUDA gets a gradient scaler. ``report``: the log key the reporter
    receives after each epoch (default: the monitor).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss: str | LossFn | None = None,
        task: str = "classification",
        schedule: Any = None,
        metrics: Iterable[str | MetricFn] | Mapping[str, str | MetricFn] | None = None,
        callbacks: Sequence[Any] = (),
        augment: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        reporter: Reporter | None = None,
        config: TrainConfig | None = None,
        step: StepPolicy | None = None,
        report: str | None = None,
    ) -> None:
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"invalid config: got {type(config).__name__}; allowed: a honing.train.TrainConfig")
        if not isinstance(model, nn.Module):
            raise ConfigError(f"invalid model: got {type(model).__name__}; allowed: a torch.nn.Module")
        if not all(hasattr(optimizer, a) for a in ("step", "zero_grad", "param_groups", "state_dict")):
            raise ConfigError(f"invalid optimizer: got {type(optimizer).__name__}; allowed: a torch.optim.Optimizer")
        if augment is not None and not callable(augment):
            raise ConfigError(f"invalid augment: got {augment!r}; allowed: a callable (x, y) -> (x, y) or None")
        if reporter is not None and not isinstance(reporter, Reporter):
            raise ConfigError(f"invalid reporter: got {reporter!r}; allowed: an object with report(value, step) and should_prune()")
        self.task = check_choice("task", task, TASKS)
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.loss_fn = default_loss(task) if loss is None else create_loss(loss)
        self.metrics: dict[str, MetricFn] = resolve_metrics(metrics, task)
        self.callbacks = list(callbacks)
        self.augment, self.reporter, self.config = augment, reporter, config

        self.device = check_device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"invalid device in TrainConfig: got {config.device!r} but CUDA is not available; allowed: 'cpu'")
        self.model.to(self.device)
        half = _HALF.get(config.precision)
        self.autocast: Any = contextlib.nullcontext() if half is None else torch.autocast(self.device.type, dtype=half)
        if step is not None and not isinstance(step, StepPolicy):
            raise ConfigError(f"invalid step: got {step!r}; allowed: an object with loss(trainer, x, y) and "
                              "backward(trainer, loss, index, count), or None")
        self.step: StepPolicy = default_step(optimizer, config, self.device) if step is None else step
        self._check_each_step = self.device.type == "cpu"  # .item() is cheap on CPU, a sync elsewhere
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self._clip: Callable[[], Any] | None = None
        if config.grad_clip_norm is not None:
            self._clip = partial(nn.utils.clip_grad_norm_, params, config.grad_clip_norm)
        elif config.grad_clip_value is not None:
            self._clip = partial(nn.utils.clip_grad_value_, params, config.grad_clip_value)
        self._hooks: dict[str, list[Callable[..., Any]]] = {}
        self.writes_checkpoints = True  # False on data-parallel ranks but 0: they read rank 0's checkpoint

        # run state (saved in checkpoints)
        self.epoch = 0  # epochs completed (the current one while it runs); counts from 1
        self.global_step = 0  # optimizer steps taken
        self.history: list[dict[str, float]] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._stop_reason: str | None = None
        self.result: FitResult | None = None  # set when a fit ends
        self._pruned = False
        self._generator = torch.Generator().manual_seed(config.seed)
        self.monitor, self.mode = config.monitor, resolve_mode(config.monitor, config.mode)
        self._report_request = report
        self._report_key = config.monitor
        self.log_keys: tuple[str, ...] | None = None  # known once fit starts
        self._schedule_monitor: str | None = None

    # --- public API ------------------------------------------------------------------------

    def request_stop(self, reason: str = "") -> None:
        """Stop training (callbacks call this): after the current batch when called from
        ``on_batch_end``, else after the current epoch. The first reason given wins."""
        if self._stop_reason is None:
            self._stop_reason = reason or "stopped by callback"

    def fit(self, train: Data, val: Data | None = None, *, checkpoint_dir: str | os.PathLike[str] | None = None,
            resume: bool = False) -> FitResult:
        """Train for ``config.epochs`` (or until stopped). With ``checkpoint_dir`` a checkpoint is
        written every ``config.checkpoint_every`` epochs (and at the last); ``resume=True``
        continues from it, or starts fresh when the folder holds none."""
        epochs = self.iter_fit(train, val, checkpoint_dir=checkpoint_dir, resume=resume)
        for _ in epochs:
            pass
        assert self.result is not None
        return self.result

    def iter_fit(self, train: Data, val: Data | None = None, *,
                 checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> Iterator[dict[str, float]]:
        """``fit`` one epoch at a time: yields each epoch's logs; ``self.result`` is set when it ends.

        Several trainers can run in lockstep this way (k-fold cross-validation reports the
        fold-averaged curve each epoch); ``request_stop`` ends a run after the current epoch.
        """
        cfg = self.config
        if resume and checkpoint_dir is None:
            raise ConfigError("invalid resume: got True without checkpoint_dir; allowed: pass checkpoint_dir to resume from")
        self.result = None
        set_threads(cfg.threads)
        x, y = self._on_device(train, "train")
        val_xy = None if val is None else self._on_device(val, "val")
        self._prepare(x.shape[0], has_val=val_xy is not None)

        for hook in self._hooks["on_fit_start"]:
            hook(self)
        if checkpoint_dir is not None and resume and has_checkpoint(checkpoint_dir):
            self.load_state_dict(load_checkpoint(checkpoint_dir, self.model))
        else:
            self._reset()
            torch.manual_seed(cfg.seed)  # dropout and other global-RNG draws start from the seed

        bar = self._progress_bar()
        try:
            while self._stop_reason is None and self.epoch < cfg.epochs:
                self.epoch += 1
                logs = self._run_epoch(x, y, val_xy)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: v for k, v in logs.items() if k in ("loss", self.monitor)})
                last = self._stop_reason is not None or self.epoch == cfg.epochs
                if checkpoint_dir is not None and self.writes_checkpoints and (
                        self.epoch % cfg.checkpoint_every == 0 or last):
                    self.save_checkpoint(checkpoint_dir)
                yield logs
        finally:
            if bar is not None:
                bar.close()
        self.result = self._finish()

    @torch.no_grad()
    def evaluate(self, data: Data, *, prefix: str = "") -> dict[str, float]:
        """Loss and metrics on a split or an (x, y) pair: eval mode, no_grad, batched."""
        x, y = self._on_device(data, "evaluate")
        pred = self._predict_on_device(x)
        out = {f"{prefix}loss": float(self.loss_fn(pred, y))}
        for name, fn in self.metrics.items():
            out[f"{prefix}{name}"] = float(fn(pred, y))
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs (logits or values) for ``x``, batched in eval mode, on ``x``'s device."""
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"invalid x for predict: got {type(x).__name__}; allowed: a torch.Tensor")
        return self._predict_on_device(x.to(self.device)).to(x.device)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights (optimizer, schedule, callbacks, augmentation, random
        generators, best epoch, history), as plain containers of tensors/numbers/strings."""
        augment = self.augment
        cuda = self.device.type == "cuda"
        return {
            "global_step": self.global_step,
            "history": [dict(logs) for logs in self.history],
            "best": {"value": self.best_value, "epoch": self.best_epoch, "monitor": self.monitor, "mode": self.mode},
            "best_weights": self._best_weights,
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "callbacks": [{"name": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks],
            "augment": augment.state_dict() if hasattr(augment, "state_dict") else None,
            "data_generator": self._generator.get_state(),
            "rng": capture_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
            "scaler": _policy_state(self.step),  # the key predates step policies: AMP's scaler
            "stop_reason": self._stop_reason,
            "pruned": self._pruned,
            "config": dataclasses.asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of ``state_dict`` (with ``state["epoch"]``; the weights are loaded apart)."""
        matched = match_callbacks(self.callbacks, state["callbacks"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = [dict(logs) for logs in state["history"]]
        self.best_value = state["best"]["value"]
        self.best_epoch = state["best"]["epoch"]
        self._best_weights = state["best_weights"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        for cb, saved in matched:
            cb.load_state_dict(saved)
        if state["augment"] is not None and hasattr(self.augment, "load_state_dict"):
            self.augment.load_state_dict(state["augment"])
        self._generator.set_state(state["data_generator"])
        restore_rng_state(state["rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        load = getattr(self.step, "load_state_dict", None)
        if load is not None and state["scaler"] is not None:
            load(state["scaler"])
        self._stop_reason = state["stop_reason"]
        self._pruned = bool(state["pruned"])

    def save_checkpoint(self, directory: str | os.PathLike[str]) -> None:
        """Write the current state (what ``fit`` does every ``checkpoint_every`` epochs)."""
        save_checkpoint(directory, self.model, self.state_dict(), epoch=self.epoch)

    # --- one epoch -------------------------------------------------------------------------

    def _run_epoch(self, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, float]:
        epoch = self.epoch
        for hook in self._hooks["on_epoch_start"]:
            hook(self, epoch)
        lr = self._current_lr()
        start = time.perf_counter()
        loss = self._train_epoch(x, y)
        logs: dict[str, float] = {"epoch": epoch, "loss": loss, "lr": lr, "time": time.perf_counter() - start}
        if val is not None:
            logs.update(self.evaluate(val, prefix="val_"))
        self.history.append(logs)

        epoch_end = getattr(self.schedule, "epoch_end", None)
        if epoch_end is not None:
            epoch_end(logs[self._schedule_monitor] if self._schedule_monitor else None)
        self._track_best(logs)
        if self.reporter is not None:
            reason = report_epoch(self.reporter, logs[self._report_key], epoch)
            if reason is not None:
                self._pruned = True
                self._stop_reason = reason
        for hook in self._hooks["on_epoch_end"]:
            hook(self, epoch, logs)
        return logs

    def _train_epoch(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One pass over the training data; returns the sample-weighted mean loss."""
        augment, step = self.augment, self.step
        accumulate, eager = self.config.accumulate, self._check_each_step
        batch_hooks, start_hooks = self._hooks["on_batch_end"], self._hooks["on_batch_start"]
        self.model.train()
        batches, sizes = epoch_batches(x, y, self.config, self._generator)
        n, first_step = len(sizes), self.global_step
        total, seen, pending = 0.0, 0, []
        for i, (xb, yb) in enumerate(batches):
            if augment is not None:
                xb, yb = augment(xb, yb)
            for hook in start_hooks:  # may replace the batch (e.g. adversarial examples of this model)
                changed = hook(self, xb, yb)
                if changed is not None:
                    xb, yb = changed
            loss = step.loss(self, xb, yb)
            if eager:  # on CPU .item() is cheap: check before backward, so weights stay finite
                value = loss.item()
                if not math.isfinite(value):
                    raise self._diverged(value, i, n, first_step + i // accumulate + 1)
                total += value * sizes[i]
            else:  # on accelerators avoid a sync per step: check once at the end of the epoch
                pending.append(loss.detach())
            seen += sizes[i]
            step.backward(self, loss, i, n)
            if batch_hooks:
                for hook in batch_hooks:
                    hook(self, self.global_step, loss)
                if self._stop_reason is not None:
                    self.optimizer.zero_grad(set_to_none=True)  # drop a partial accumulation group
                    break
        if not eager:
            losses = torch.stack(pending).double()  # (batches run,)
            finite = torch.isfinite(losses)
            if not bool(finite.all()):
                i = int((~finite).nonzero()[0])
                raise self._diverged(float(losses[i]), i, n, first_step + i // accumulate + 1)
            total = float((losses * torch.tensor(sizes[: len(pending)], device=losses.device)).sum())
        return total / seen

    # --- what step policies call -----------------------------------------------------------

    @property
    def clips(self) -> bool:
        """Whether the config asks for gradient clipping."""
        return self._clip is not None

    def clip_gradients(self) -> None:
        """Clip gradients as the config says (norm or value); nothing when it does not."""
        if self._clip is not None:
            self._clip()

    def finish_step(self) -> None:
        """After ``optimizer.step()``: zero the gradients, step the schedule, count the step."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.schedule is not None:
            self.schedule.step()
        self.global_step += 1

    # --- around the loop -------------------------------------------------------------------

    def _prepare(self, num_samples: int, *, has_val: bool) -> None:
        """Per-fit setup that needs the data: batch counts, hooks, log keys, the monitor."""
        cfg = self.config
        if cfg.batches_per_epoch(num_samples) == 0:
            raise ConfigError(
                f"invalid batch_size in TrainConfig: got {cfg.batch_size} with drop_last=True but the training "
                f"split has only {num_samples} rows; allowed: batch_size <= {num_samples} or drop_last=False"
            )
        self._hooks = {h: [getattr(cb, h) for cb in self.callbacks if overrides(cb, h)] for h in HOOKS}
        keys = ["epoch", "loss", "lr", "time"]
        if has_val:
            keys += ["val_loss"] + [f"val_{name}" for name in self.metrics]
        self.log_keys = tuple(keys)
        self.monitor = self._log_key("monitor", cfg.monitor, has_val)
        self.mode = resolve_mode(self.monitor, cfg.mode)
        report = self._report_request
        self._report_key = self.monitor if report is None else self._log_key("report", report, has_val)
        monitor = getattr(self.schedule, "monitor", None)
        self._schedule_monitor = None if monitor is None else self._log_key("schedule monitor", monitor, has_val)

    def _log_key(self, what: str, key: str, has_val: bool) -> str:
        """``key`` if the epoch logs will have it; "val_loss" falls back to "loss" without validation."""
        assert self.log_keys is not None
        if key in self.log_keys:
            return key
        if key == "val_loss" and not has_val:
            return "loss"
        hint = " (val_* keys need a validation split: fit(train, val))" if key.startswith("val_") and not has_val else ""
        raise ConfigError(f"invalid {what}: got {key!r}; allowed: {', '.join(map(repr, self.log_keys))}{hint}")

    def _reset(self) -> None:
        self.epoch, self.global_step, self.history = 0, 0, []
        self.best_value = self.best_epoch = self._best_weights = None
        self._stop_reason, self._pruned = None, False
        self._generator = torch.Generator().manual_seed(self.config.seed)

    def _track_best(self, logs: dict[str, float]) -> None:
        value = logs[self.monitor]
        if not math.isfinite(value):
            return
        best = self.best_value
        if best is None or (value < best if self.mode == "min" else value > best):
            self.best_value, self.best_epoch = value, self.epoch
            if self.config.keep_best:
                self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _finish(self) -> FitResult:
        if self.config.keep_best and self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        finalize = getattr(self.optimizer, "finalize", None)
        if callable(finalize):
            finalize()  # after restoring the best weights, so its final projection applies to them
        result = FitResult(
            history=list(self.history), best_epoch=self.best_epoch, best_value=self.best_value,
            monitor=self.monitor, stop_reason=self._stop_reason or f"completed {self.epoch} epochs",
            epochs_run=self.epoch, global_step=self.global_step, pruned=self._pruned,
        )
        for hook in self._hooks["on_fit_end"]:
            hook(self, result)
        return result

    def _diverged(self, value: float, index: int, count: int, global_step: int) -> DivergedError:
        err = DivergedError(
            f"training diverged: the loss is {value} at epoch {self.epoch}, step {index + 1} of {count} in the "
            f"epoch (global step {global_step}). Try a lower learning rate (now {self._current_lr():g}) "
            f"or gradient clipping (TrainConfig(grad_clip_norm=1.0)).",
            epoch=self.epoch, step=index + 1, value=value,
        )
        err.global_step = global_step  # type: ignore[attr-defined]
        return err

    def _current_lr(self) -> float:
        get_last_lr = getattr(self.schedule, "get_last_lr", None)
        lr = get_last_lr()[0] if get_last_lr is not None else self.optimizer.param_groups[0]["lr"]
        return float(lr)

    def _on_device(self, data: Data, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = as_tensors(data, where)
        return x.to(self.device), y.to(self.device)

    def _predict_on_device(self, x: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with self.autocast:
                outs = [self.model(xb) for xb in x.split(self.config.eval_batch_size)]
        finally:
            self.model.train(was_training)
        pred = torch.cat(outs)
        return pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred

    def _progress_bar(self) -> Any:
        show = self.config.progress
        if show is None:
            show = sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.epochs, initial=self.epoch, unit="epoch", file=sys.stderr, leave=False)


def _policy_state(step: Any) -> Any:
    state_dict = getattr(step, "state_dict", None)
    return None if state_dict is None else state_dict()
