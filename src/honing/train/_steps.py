"""Step policies: how one batch becomes gradients and optimizer steps.

The Trainer owns the loop (batches, the finite check, hooks, validation); a step policy owns
the two calls inside it that differ between training styles:

* ``loss(trainer, xb, yb)``: the forward pass under the Trainer's autocast, returning the
  batch loss (a closure policy also takes its optimizer step here, since the optimizer calls
  the forward pass itself);
* ``backward(trainer, loss, index, count)``: gradients, and the optimizer step when one is
  due (``index`` is the batch's position in the epoch, ``count`` the epoch's batch count).

A policy takes a step through ``trainer.clip_gradients()`` then ``optimizer.step()`` then
``trainer.finish_step()`` (zero_grad, schedule step, step counter). Built in:

=============  =======================================================================
``Standard``   backward and step per batch, or every ``accumulate`` batches (the last
               group of an epoch may be shorter; its losses are averaged over its size)
``Amp``        the same with a ``GradScaler`` (float16 on CUDA): scaled backward,
               unscale before clipping, skipped steps on overflow
``Closure``    optimizers that re-evaluate the loss (LBFGS, ``needs_closure = True``)
=============  =======================================================================

``default_step(optimizer, config, device)`` picks one from the config; a data-parallel or
adversarial step replaces it by passing ``Trainer(..., step=MyPolicy())``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from honing._core import ConfigError

if TYPE_CHECKING:
    from honing.train._config import TrainConfig
    from honing.train._trainer import Trainer

__all__ = ["AmpStep", "ClosureStep", "StandardStep", "StepPolicy", "default_step"]


@runtime_checkable
class StepPolicy(Protocol):
    """What the Trainer asks of a step policy (see the module docstring)."""

    def loss(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor: ...

    def backward(self, trainer: Trainer, loss: torch.Tensor, index: int, count: int) -> None: ...


class StandardStep:
    """Backward per batch; an optimizer step every ``accumulate`` batches."""

    def __init__(self, accumulate: int = 1) -> None:
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ConfigError(f"invalid accumulate: got {accumulate!r}; allowed: an integer >= 1")
        self.accumulate = accumulate

    def loss(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with trainer.autocast:
            return trainer.loss_fn(trainer.model(xb), yb)

    def backward(self, trainer: Trainer, loss: torch.Tensor, index: int, count: int) -> None:
        k = self.accumulate
        if k == 1:
            self._backward(loss)
            self._step(trainer)
            return
        group_start = index - index % k
        group = min(k, count - group_start)  # the last group may be shorter
        self._backward(loss / group)
        if index - group_start == group - 1:
            self._step(trainer)

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def _step(self, trainer: Trainer) -> None:
        trainer.clip_gradients()
        trainer.optimizer.step()
        trainer.finish_step()

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        pass


class AmpStep(StandardStep):
    """``StandardStep`` with a gradient scaler, for float16 training on CUDA."""

    def __init__(self, accumulate: int = 1, device: str = "cuda") -> None:
        super().__init__(accumulate)
        self.scaler = torch.amp.GradScaler(device)

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def _step(self, trainer: Trainer) -> None:
        if trainer.clips:
            self.scaler.unscale_(trainer.optimizer)  # clip the true gradients, not the scaled ones
            trainer.clip_gradients()
        self.scaler.step(trainer.optimizer)
        self.scaler.update()
        trainer.finish_step()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.scaler.load_state_dict(state)


class ClosureStep:
    """One optimizer step per batch through a closure that recomputes loss and gradients."""

    def loss(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        first: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            trainer.optimizer.zero_grad(set_to_none=True)
            with trainer.autocast:
                loss = trainer.loss_fn(trainer.model(xb), yb)
            loss.backward()
            trainer.clip_gradients()
            if not first:
                first.append(loss.detach())
            return loss

        trainer.optimizer.step(closure)
        trainer.finish_step()
        return first[0]

    def backward(self, trainer: Trainer, loss: torch.Tensor, index: int, count: int) -> None:
        pass  # the closure already ran backward and stepped

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        pass


def needs_closure(optimizer: Any) -> bool:
    return isinstance(optimizer, torch.optim.LBFGS) or bool(getattr(optimizer, "needs_closure", False))


def default_step(optimizer: Any, config: TrainConfig, device: torch.device) -> StandardStep | ClosureStep:
    """The step policy ``config`` asks for: closure for LBFGS-like optimizers, a gradient
    scaler for float16 on CUDA, else plain steps with ``config.accumulate``."""
    amp = config.precision == "16" and device.type == "cuda"
    if needs_closure(optimizer):
        if config.accumulate > 1 or amp:
            raise ConfigError(
                f"invalid accumulate/precision for {type(optimizer).__name__}: an optimizer that needs a closure "
                f"trains with accumulate=1 and precision '32' or 'bf16' (got accumulate={config.accumulate}, "
                f"precision={config.precision!r})"
            )
        return ClosureStep()
    return AmpStep(config.accumulate, device.type) if amp else StandardStep(config.accumulate)
