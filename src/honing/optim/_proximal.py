"""Proximal gradient: a base step on the smooth loss, then the proximal operator of the penalty.

For ``min_w f(w) + lam * R(w)`` each step is ``w <- prox_{lr*lam*R}(w - lr * grad f(w))``
(ISTA when the base step is plain gradient descent). Two penalties:

- ``"l1"``: ``R(w) = ||w||_1``; the prox is soft-thresholding with threshold ``lr * lam``,
  which sets small weights to exact zeros.
- ``"group_lasso"``: ``R(W) = sum_g sqrt(|g|) ||W_g||_2`` with one group per output unit (a row
  of a weight matrix, the slice ``W[i]`` of any tensor, one element of a vector); the prox is
  group soft-thresholding with threshold ``lr * lam * sqrt(|g|)``, zeroing whole rows.

With momentum or Adam the prox is taken in the metric of the base step, so the fixed points are
those of the penalised problem (the lasso solution for a least-squares loss): with momentum
``m`` the threshold is ``lr * lam * (1 - m**t) / (1 - m)`` (the buffer's sum of a constant
gradient); with Adam it is ``lr * lam / (sqrt(v_hat) + eps)`` per element (proximal Adam; for
group lasso, averaged over the group, an approximation).

Per param group: ``penalize=False`` leaves the group's parameters unpenalised (biases, norms);
``lam`` may differ per group. ``create_optimizer`` given a model sets ``penalize=False`` on
the no-decay group.

References: N. Parikh and S. Boyd, "Proximal Algorithms", Foundations and Trends in
Optimization 1(3), 2014; A. Beck and M. Teboulle, "A Fast Iterative Shrinkage-Thresholding
Algorithm for Linear Inverse Problems" (ISTA/FISTA), SIAM J. Imaging Sciences, 2009;
M. Yuan and Y. Lin, "Model selection and estimation in regression with grouped variables", 2006;
J. Yun, A. C. Lozano, E. Yang, "Adaptive Proximal Gradient Methods for Structured Neural
Networks", NeurIPS 2021 (prox in the preconditioner's metric).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from honing._core import ConfigError, check_choice, check_number
from honing.optim._base_step import base_step, validate_base

PENALTIES = ("l1", "group_lasso")


def soft_threshold_(w: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """In place: ``w <- sign(w) * max(|w| - threshold, 0)`` (``threshold`` a number or per element)."""
    shrunk = (w.abs() - threshold).clamp_(min=0.0)
    w.copy_(torch.sign(w) * shrunk)
    return w


def group_soft_threshold_(w: torch.Tensor, threshold_per_unit_size: float | torch.Tensor) -> torch.Tensor:
    """In place group soft-thresholding, one group per slice ``w[i]`` (an output unit).

    Each group ``g`` is scaled by ``max(0, 1 - t * sqrt(|g|) / ||w_g||)``, ``t`` being
    ``threshold_per_unit_size`` (a number, or per element: then its mean over the group);
    groups whose norm is below the threshold become exactly zero.
    """
    if w.numel() == 0:
        return w
    rows = w.reshape(w.shape[0], -1) if w.dim() >= 1 else w.reshape(1, 1)  # (G, group size)
    size = rows.shape[1]
    norms = rows.norm(dim=1)  # (G,)
    t = threshold_per_unit_size
    if isinstance(t, torch.Tensor):
        t = t.reshape(rows.shape).mean(dim=1)  # (G,)
    threshold = t * size**0.5
    scale = (1 - threshold / norms.clamp(min=torch.finfo(w.dtype).tiny)).clamp_(min=0.0)  # (G,)
    w.mul_(scale.reshape(w.shape[:1] + (1,) * max(w.dim() - 1, 0)) if w.dim() >= 1 else scale[0])
    return w


class ProximalGradient(torch.optim.Optimizer):
    """Proximal gradient descent (ISTA-style) with an L1 or group-lasso penalty.

    Args:
        params: parameters or param groups (group keys: ``lr``, ``lam``, ``penalize`` and the
            base-step keys below).
        lr: step size.
        lam: penalty strength (``l1=`` is accepted as another name for it).
        penalty: ``"l1"`` or ``"group_lasso"``.
        base: ``"sgd"`` (with optional ``momentum``) or ``"adam"`` (``betas``, ``eps``).
        weight_decay: L2 added to the gradient (coupled), on top of the penalty.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        *,
        lam: float | None = None,
        l1: float | None = None,
        penalty: str = "l1",
        base: str = "sgd",
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        where = "optimizer 'proximal'"
        if lam is not None and l1 is not None:
            raise ConfigError(f"invalid l1 in {where}: got l1={l1!r} and lam={lam!r}; allowed: only one of them")
        strength = lam if lam is not None else (l1 if l1 is not None else 0.0)
        strength = check_number("lam", strength, low=0.0, where=where)
        check_choice("penalty", penalty, PENALTIES, where=where)
        lr, momentum, betas, eps, weight_decay = validate_base(
            lr=lr, base=base, momentum=momentum, betas=betas, eps=eps, weight_decay=weight_decay, where=where
        )
        defaults = dict(
            lr=lr, lam=strength, penalty=penalty, base=base, momentum=momentum, betas=betas, eps=eps,
            weight_decay=weight_decay, penalize=True,
        )
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            w = f"{where} param group {i}"
            validate_base(
                lr=group["lr"], base=group["base"], momentum=group["momentum"], betas=group["betas"],
                eps=group["eps"], weight_decay=group["weight_decay"], where=w,
            )
            check_number("lam", group["lam"], low=0.0, where=w)
            check_choice("penalty", group["penalty"], PENALTIES, where=w)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            strength = group["lr"] * group["lam"] if group["penalize"] else 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("ProximalGradient does not support sparse gradients")
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                scale = base_step(p, grad, group, state)
                if strength > 0:
                    threshold = strength * scale
                    if group["penalty"] == "l1":
                        soft_threshold_(p, threshold)
                    else:
                        group_soft_threshold_(p, threshold)
        return loss

    def sparsity(self) -> float:
        """Fraction of exact zeros over the penalised parameters."""
        zeros = total = 0
        for group in self.param_groups:
            if not group["penalize"]:
                continue
            for p in group["params"]:
                zeros += int((p == 0).sum())
                total += p.numel()
        return zeros / total if total else 0.0
