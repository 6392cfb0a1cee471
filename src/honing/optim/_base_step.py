"""The inner update shared by the composite optimizers (proximal, ADMM): SGD (+ momentum) or Adam.

Each function works on one parameter in place and keeps its buffers in the optimizer's
``state[p]`` dict, so ``state_dict()`` saves them like torch's own optimizers do.
"""

from __future__ import annotations

from typing import Any

import torch

from honing._core import ConfigError, check_choice, check_number

BASES = ("sgd", "adam")


def validate_base(
    *,
    lr: float,
    base: str,
    momentum: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    where: str,
) -> tuple[float, float, tuple[float, float], float, float]:
    """Check the hyperparameters of the base step; returns them as floats."""
    check_choice("base", base, BASES, where=where)
    lr_f = check_number("lr", lr, low=0.0, where=where)
    mom = check_number("momentum", momentum, low=0.0, high=1.0, high_inclusive=False, where=where)
    wd = check_number("weight_decay", weight_decay, low=0.0, where=where)
    eps_f = check_number("eps", eps, low=0.0, low_inclusive=False, where=where)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ConfigError(f"invalid betas in {where}: got {betas!r}; allowed: a pair of numbers in [0, 1)")
    b1 = check_number("betas[0]", betas[0], low=0.0, high=1.0, high_inclusive=False, where=where)
    b2 = check_number("betas[1]", betas[1], low=0.0, high=1.0, high_inclusive=False, where=where)
    assert lr_f is not None and mom is not None and wd is not None and eps_f is not None
    if base == "adam" and mom > 0:
        raise ConfigError(
            f"invalid momentum in {where}: got {momentum!r} with base 'adam'; allowed: 0 (Adam's momentum is betas[0])"
        )
    assert b1 is not None and b2 is not None
    return lr_f, mom, (b1, b2), eps_f, wd


def base_step(
    p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
) -> float | torch.Tensor:
    """Apply one SGD/momentum or Adam step to ``p`` with gradient ``grad`` (already including
    weight decay and any penalty gradient). ``state["step"]`` must already count this step.

    Returns the step's scale relative to plain gradient descent with step ``lr``, for a proximal
    step in the same metric: ``(1 - momentum**t) / (1 - momentum)`` for momentum SGD (what the
    momentum buffer sums a constant gradient to), the element-wise ``1 / (sqrt(v_hat) + eps)``
    for Adam, 1 for plain SGD.
    """
    lr = group["lr"]
    if group["base"] == "adam":
        beta1, beta2 = group["betas"]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = state["step"]
        bias1 = 1 - beta1**t
        bias2 = 1 - beta2**t
        denom = (v / bias2).sqrt_().add_(group["eps"])
        p.addcdiv_(m, denom, value=-lr / bias1)
        return denom.reciprocal_()
    momentum = group["momentum"]
    if momentum > 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.detach().clone()
        else:
            buf.mul_(momentum).add_(grad)
        p.add_(buf, alpha=-lr)
        return (1 - momentum ** state["step"]) / (1 - momentum)
    p.add_(grad, alpha=-lr)
    return 1.0

