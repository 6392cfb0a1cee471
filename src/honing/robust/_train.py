"""Adversarial training: a Trainer step policy that trains on attacked batches.

=========  ==========================================================================
``pgd``    PGD-AT: the loss on PGD examples (random start, ``steps`` steps) (Madry et al., 2018)
``trades`` the clean loss plus ``beta`` x KL(clean prediction || prediction on the point of
           the ball that maximizes that KL) (Zhang et al., 2019)
``fgsm``   fast adversarial training: one FGSM step of 1.25 x epsilon from a uniform random
           start (Wong, Rice and Kolter, 2020)
=========  ==========================================================================

Attacks run in eval mode (batch-norm statistics are not moved by attacked batches) and the
model is back in training mode for the update. ``epsilon`` is in the ``InputSpace``'s units, as
in the evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from honing._core import ConfigError, check_int, check_number
from honing.robust._attacks import _project, _random_start, _step, eval_mode, pgd
from honing.robust._space import InputSpace
from honing.train import StandardStep

if TYPE_CHECKING:
    from honing.train import Trainer

__all__ = ["ADVERSARIAL_METHODS", "AdversarialStep"]

ADVERSARIAL_METHODS = ("pgd", "trades", "fgsm")


class AdversarialStep(StandardStep):
    """The step policy of adversarial training (``Trainer(..., step=AdversarialStep(...))``)."""

    def __init__(self, method: str = "pgd", epsilon: float = 0.1, *, space: InputSpace | None = None,
                 steps: int = 7, step_size: float | None = None, beta: float = 6.0, accumulate: int = 1,
                 seed: int = 0) -> None:
        super().__init__(accumulate)
        if method not in ADVERSARIAL_METHODS:
            raise ConfigError(f"invalid adversarial method: got {method!r}; allowed: {', '.join(ADVERSARIAL_METHODS)}")
        self.method = method
        self.epsilon = check_number("epsilon", epsilon, low=0)
        self.steps = check_int("steps", steps, low=1)
        self.step_size = check_number("step_size", step_size, low=0, low_inclusive=False, allow_none=True)
        self.beta = check_number("beta", beta, low=0)
        self.space = space or InputSpace.identity()
        self.seed = seed
        self._calls = 0

    def loss(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if trainer.task != "classification":
            raise ConfigError(f"adversarial training needs a classification task; got {trainer.task}")
        model = trainer.model
        self._calls += 1
        seed = self.seed * 1_000_003 + self._calls  # a new random start per batch, the same on a re-run
        if self.method == "trades":
            return self._trades(trainer, xb, yb, seed)
        if self.method == "pgd":
            x_adv = pgd(model, xb, yb, self.epsilon, steps=self.steps, step_size=self.step_size, seed=seed,
                        space=self.space).x
        else:
            x_adv = self._fast_fgsm(trainer, xb, yb, seed)
        with trainer.autocast:
            return trainer.loss_fn(model(x_adv), yb)

    def _fast_fgsm(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor, seed: int) -> torch.Tensor:
        space, eps = self.space, self.epsilon
        gen = torch.Generator(device=xb.device).manual_seed(seed)
        u0 = space.to_units(xb).detach()
        with eval_mode(trainer.model):
            u = _random_start(u0, eps, "linf", space, gen).requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(trainer.model(space.to_model(u)), yb)
                (g,) = torch.autograd.grad(loss, u)
        alpha = 1.25 * eps if self.step_size is None else self.step_size
        return space.to_model(_project(u.detach() + alpha * _step(g, "linf", space), u0, eps, "linf", space)).detach()

    def _trades(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor, seed: int) -> torch.Tensor:
        model, space, eps = trainer.model, self.space, self.epsilon
        alpha = self.step_size or 2.5 * eps / self.steps
        gen = torch.Generator(device=xb.device).manual_seed(seed)
        u0 = space.to_units(xb).detach()
        with eval_mode(model):
            with torch.no_grad():
                p_clean = F.softmax(model(xb), dim=1)
            noise = 0.001 * torch.randn(u0.shape, generator=gen, device=xb.device, dtype=u0.dtype)
            u = space.clip(u0 + space.masked(noise))
            for _ in range(self.steps):
                u = u.detach().requires_grad_(True)
                with torch.enable_grad():
                    kl = F.kl_div(F.log_softmax(model(space.to_model(u)), dim=1), p_clean, reduction="sum")
                    (g,) = torch.autograd.grad(kl, u)
                u = _project(u.detach() + alpha * _step(g, "linf", space), u0, eps, "linf", space)
        x_adv = space.to_model(u).detach()
        with trainer.autocast:
            logits = model(xb)
            robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
            return trainer.loss_fn(logits, yb) + self.beta * robust
