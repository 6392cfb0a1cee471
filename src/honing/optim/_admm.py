"""ADMM training under a sparsity constraint: at most ``k`` non-zero weights per constrained tensor.

The problem ``min_W f(W)  s.t.  W in S`` is split as ``f(W) + g(Z)`` with ``W = Z`` (``g`` the
indicator of ``S``) and solved in scaled form:

- W-step: one base-optimizer step (SGD/momentum or Adam) on ``f(W) + rho/2 ||W - Z + U||^2``,
  i.e. ``rho * (W - Z + U)`` is added to the gradient; every optimizer step is a W-step.
- every ``admm_interval`` steps, the Z-step ``Z <- proj_S(W + U)`` (keep the k largest
  magnitudes) and the dual update ``U <- U + W - Z``; then the primal residual ``||W - Z||``
  and the dual residual ``rho * ||Z - Z_prev||`` (over all constrained tensors) are appended to
  ``self.residuals`` as ``{"step", "primal", "dual", "rho"}`` and logged at DEBUG level.
  ``rho_growth > 1`` multiplies rho after each Z-step (up to ``rho_max``), rescaling U.

``finalize()`` does the hard projection ``W <- proj_S(W)`` and returns the masks; later steps
(masked retraining) keep the pruned weights at zero. Z and U live in ``self.state[p]`` and the
residual log is part of ``state_dict()``.

Constrained tensors: a param group's ``constrain`` flag; when it is None (the default), tensors
with ``dim() >= 2``. ``create_optimizer`` given a model sets ``constrain=False`` on the group of
biases, norm parameters and gains. ``k`` (non-zeros kept) or ``sparsity`` (fraction of zeros,
``k = numel - round(sparsity * numel)``) may also differ per group.

References: S. Boyd, N. Parikh, E. Chu, B. Peleato, J. Eckstein, "Distributed Optimization and
Statistical Learning via the Alternating Direction Method of Multipliers", Foundations and
Trends in Machine Learning 3(1), 2011; T. Zhang, S. Ye, K. Zhang, J. Tang, W. Wen, M. Fardad,
Y. Wang, "A Systematic DNN Weight Pruning Framework using Alternating Direction Method of
Multipliers", ECCV 2018.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch

from honing._core import ConfigError, check_int, check_number
from honing.optim._base_step import base_step, validate_base

logger = logging.getLogger(__name__)


def topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest magnitudes of ``x`` (exactly ``min(k, numel)`` True)."""
    flat = x.detach().abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    k = min(k, flat.numel())
    if k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view_as(x)


def _keep_count(group: dict[str, Any], numel: int) -> int:
    if group["k"] is not None:
        return min(int(group["k"]), numel)
    return numel - int(round(group["sparsity"] * numel))


def _check_constraint(k: Any, sparsity: Any, where: str) -> None:
    if k is None and sparsity is None:
        raise ConfigError(
            f"invalid k in {where}: got k=None and sparsity=None; allowed: give k (non-zeros kept per "
            "constrained tensor, an integer >= 0) or sparsity (fraction of zeros in [0, 1))"
        )
    if k is not None and sparsity is not None:
        raise ConfigError(f"invalid k in {where}: got k={k!r} and sparsity={sparsity!r}; allowed: only one of them")
    check_int("k", k, low=0, allow_none=True, where=where)
    check_number("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False, allow_none=True, where=where)


def _own_constraint(params: Iterable[Any]) -> Any:
    """A group that sets ``k`` (or ``sparsity``) does not inherit the other from the defaults."""
    items = list(params)
    if not items or not isinstance(items[0], dict):
        return items
    out = []
    for group in items:
        group = dict(group)
        if "k" in group and "sparsity" not in group:
            group["sparsity"] = None
        elif "sparsity" in group and "k" not in group:
            group["k"] = None
        out.append(group)
    return out


class ADMM(torch.optim.Optimizer):
    """ADMM for training with at most ``k`` non-zeros per constrained tensor (see module docstring).

    Args:
        params: parameters or param groups (group keys: ``lr``, ``k``, ``sparsity``, ``rho``,
            ``constrain``, ``admm_interval`` and the base-step keys).
        lr: step size of the base optimizer.
        k: non-zeros kept per constrained tensor; or ``sparsity``: fraction of zeros.
        rho: penalty parameter (> 0).
        admm_interval: optimizer steps between Z-steps.
        rho_growth, rho_max: rho is multiplied by ``rho_growth`` after each Z-step, capped at ``rho_max`` (None: no cap).
        base: ``"sgd"`` (``momentum``) or ``"adam"`` (``betas``, ``eps``); ``weight_decay``: coupled L2.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        *,
        k: int | None = None,
        sparsity: float | None = None,
        rho: float = 1e-2,
        admm_interval: int = 50,
        rho_growth: float = 1.0,
        rho_max: float | None = None,
        base: str = "adam",
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        where = "optimizer 'admm'"
        lr, momentum, betas, eps, weight_decay = validate_base(
            lr=lr, base=base, momentum=momentum, betas=betas, eps=eps, weight_decay=weight_decay, where=where
        )
        defaults = dict(
            lr=lr, k=k, sparsity=sparsity, rho=rho, admm_interval=admm_interval, rho_growth=rho_growth,
            rho_max=rho_max, base=base, momentum=momentum, betas=betas, eps=eps, weight_decay=weight_decay,
            constrain=None,
        )
        self._check_admm(defaults, where)
        super().__init__(_own_constraint(params), defaults)
        for i, group in enumerate(self.param_groups):
            w = f"{where} param group {i}"
            validate_base(
                lr=group["lr"], base=group["base"], momentum=group["momentum"], betas=group["betas"],
                eps=group["eps"], weight_decay=group["weight_decay"], where=w,
            )
            self._check_admm(group, w)
        self.residuals: list[dict[str, float]] = []
        self.finalized = False

    @staticmethod
    def _check_admm(options: dict[str, Any], where: str) -> None:
        _check_constraint(options["k"], options["sparsity"], where)
        check_number("rho", options["rho"], low=0.0, low_inclusive=False, where=where)
        check_int("admm_interval", options["admm_interval"], low=1, where=where)
        check_number("rho_growth", options["rho_growth"], low=1.0, where=where)
        check_number("rho_max", options["rho_max"], low=options["rho"], allow_none=True, where=where)

    # -- which tensors are constrained ------------------------------------------------------
    @staticmethod
    def _constrained(group: dict[str, Any], p: torch.Tensor) -> bool:
        flag = group["constrain"]
        return p.dim() >= 2 if flag is None else bool(flag)

    def _init_state(self, group: dict[str, Any], p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if "Z" not in state:
            state["step"] = state.get("step", 0)
            state["Z"] = p.detach() * topk_mask(p, _keep_count(group, p.numel()))
            state["U"] = torch.zeros_like(p)
        return state

    # -- the steps ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        primal_sq = dual_sq = 0.0
        z_steps: list[int] = []
        rhos: list[float] = []
        for group in self.param_groups:
            rho = group["rho"]
            z_stepped = False
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                constrained = self._constrained(group, p)
                if not constrained:
                    state = self.state[p]
                    state["step"] = state.get("step", 0) + 1
                    base_step(p, grad, group, state)
                    continue
                state = self._init_state(group, p)
                state["step"] += 1
                if self.finalized:  # masked retraining: pruned weights stay zero
                    mask = state["mask"]
                    base_step(p, grad * mask, group, state)
                    p.mul_(mask)
                    continue
                Z, U = state["Z"], state["U"]
                grad = grad + rho * (p - Z + U)
                base_step(p, grad, group, state)
                if state["step"] % group["admm_interval"] == 0:
                    z_prev = Z.clone()
                    v = p + U
                    Z.copy_(v * topk_mask(v, _keep_count(group, p.numel())))
                    U.add_(p - Z)
                    primal_sq += float((p - Z).pow(2).sum())
                    dual_sq += float((rho * (Z - z_prev)).pow(2).sum())
                    z_steps.append(state["step"])
                    z_stepped = True
            if z_stepped:
                rhos.append(rho)
                new_rho = rho * group["rho_growth"]
                if group["rho_max"] is not None:
                    new_rho = min(new_rho, group["rho_max"])
                if new_rho != rho:  # scaled dual U = y / rho must follow rho
                    for p in group["params"]:
                        if "U" in self.state[p]:
                            self.state[p]["U"].mul_(rho / new_rho)
                    group["rho"] = new_rho
        if z_steps:
            record = {"step": max(z_steps), "primal": primal_sq**0.5, "dual": dual_sq**0.5, "rho": max(rhos)}
            self.residuals.append(record)
            logger.debug("ADMM step %(step)d: primal residual %(primal).4g, dual residual %(dual).4g", record)
        return loss

    @torch.no_grad()
    def masks(self) -> dict[str, torch.Tensor]:
        """Masks of the weights ``proj(W)`` keeps, by parameter name (``"group.index"`` without names).

        After ``finalize()`` these are the masks that were applied.
        """
        out: dict[str, torch.Tensor] = {}
        for gi, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for pi, p in enumerate(group["params"]):
                if not self._constrained(group, p):
                    continue
                state = self.state[p]
                mask = state.get("mask")
                if mask is None:
                    mask = topk_mask(p, _keep_count(group, p.numel()))
                out[names[pi] if names else f"{gi}.{pi}"] = mask.clone()
        return out

    @torch.no_grad()
    def finalize(self) -> dict[str, torch.Tensor]:
        """Hard projection ``W <- proj(W)`` of every constrained tensor; returns the masks.

        Afterwards each constrained tensor has at most ``k`` non-zeros and further ``step()``
        calls retrain only the kept weights.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if not self._constrained(group, p):
                    continue
                state = self._init_state(group, p)
                mask = topk_mask(p, _keep_count(group, p.numel()))
                p.mul_(mask)
                state["mask"] = mask
        self.finalized = True
        return self.masks()

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["residuals"] = [dict(r) for r in self.residuals]
        sd["finalized"] = self.finalized
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        residuals = state_dict.pop("residuals", [])
        finalized = bool(state_dict.pop("finalized", False))
        super().load_state_dict(state_dict)
        self.residuals = [dict(r) for r in residuals]
        self.finalized = finalized
        if finalized:
            for group in self.param_groups:
                for p in group["params"]:
                    st = self.state[p]
                    if "mask" in st:
                        st["mask"] = st["mask"].to(torch.bool)
