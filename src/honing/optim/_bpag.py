"""BPAG: back-propagation with adaptive gain.

Gradient descent with momentum, ``delta(t) = -lr * grad + momentum * delta(t-1)``, applied both
to the weights and to the neuron gains ``c`` of activations ``f(c * x)``; the gains get their
own learning rate (``gain_lr``, default ``lr``) and momentum (``gain_momentum``, default
``momentum``). Gains are the parameters whose name ends with ``gain``: given named parameters
(a model through ``create_optimizer``, ``model.named_parameters()``, or groups with
``param_names``), every group is split into a weight group and a gain group automatically.
With plain tensors, mark a param group as gains with ``{"params": [...], "gain": True}``.

A group's gain learning rate keeps the ratio of its weight learning rate to ``lr`` (so
layer-wise decay applies to gains too): ``gain group lr = group lr * gain_lr / lr``.

References: J. K. Kruschke and J. R. Movellan, "Benefits of gain: speeded learning and minimal
hidden layers in back-propagation networks", IEEE Trans. Systems, Man, and Cybernetics 21(1),
1991; D. E. Rumelhart, G. E. Hinton, R. J. Williams, "Learning representations by
back-propagating errors", Nature, 1986 (momentum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from honing._core import ConfigError, check_number

GAIN_SUFFIX = "gain"


def _split_gains(params: Iterable[Any]) -> list[dict[str, Any]]:
    """Param groups with named gains moved into their own groups flagged ``gain=True``."""
    items = list(params)
    if not items:
        raise ConfigError("invalid params in optimizer 'bpag': got an empty parameter list; allowed: a non-empty one")
    groups = [dict(g) for g in items] if isinstance(items[0], dict) else [{"params": items}]
    out: list[dict[str, Any]] = []
    for group in groups:
        members = list(group["params"]) if not isinstance(group["params"], torch.Tensor) else [group["params"]]
        names = group.get("param_names")
        if members and isinstance(members[0], tuple):
            names = [n for n, _ in members]
            members = [p for _, p in members]
        if names is None or "gain" in group:
            out.append({**group, "params": members})
            continue
        weights = [(n, p) for n, p in zip(names, members) if not n.endswith(GAIN_SUFFIX)]
        gains = [(n, p) for n, p in zip(names, members) if n.endswith(GAIN_SUFFIX)]
        for chosen, is_gain in ((weights, False), (gains, True)):
            if chosen:
                out.append(
                    {**group, "params": [p for _, p in chosen], "param_names": [n for n, _ in chosen], "gain": is_gain}
                )
    named = ["param_names" in g for g in out]
    if any(named) and not all(named):
        raise ConfigError("invalid params in optimizer 'bpag': got groups with and without param_names; allowed: all or none")
    return out


class BPAG(torch.optim.Optimizer):
    """Momentum gradient descent on weights and adaptive gains (see module docstring).

    Args:
        params: parameters, named parameters or param groups (group keys: ``lr``, ``momentum``,
            ``weight_decay``, ``gain``).
        lr: learning rate of the weights.
        momentum: momentum of the weights.
        gain_lr: learning rate of the gains (default: ``lr``).
        gain_momentum: momentum of the gains (default: ``momentum``).
        weight_decay: coupled L2 on the weights (never applied to gains).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.9,
        gain_lr: float | None = None,
        gain_momentum: float | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        where = "optimizer 'bpag'"
        lr = check_number("lr", lr, low=0.0, where=where)
        momentum = check_number("momentum", momentum, low=0.0, high=1.0, high_inclusive=False, where=where)
        gain_lr = check_number("gain_lr", lr if gain_lr is None else gain_lr, low=0.0, where=where)
        gain_momentum = check_number(
            "gain_momentum", momentum if gain_momentum is None else gain_momentum,
            low=0.0, high=1.0, high_inclusive=False, where=where,
        )
        weight_decay = check_number("weight_decay", weight_decay, low=0.0, where=where)
        groups = _split_gains(params)
        for group in groups:
            if group.get("gain"):
                scale = group["lr"] / lr if "lr" in group and lr and lr > 0 else 1.0
                group["lr"] = gain_lr * scale
                group.setdefault("momentum", gain_momentum)
                group["weight_decay"] = 0.0
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, gain=False)
        super().__init__(groups, defaults)
        for i, group in enumerate(self.param_groups):
            w = f"{where} param group {i}"
            check_number("lr", group["lr"], low=0.0, where=w)
            check_number("momentum", group["momentum"], low=0.0, high=1.0, high_inclusive=False, where=w)
            check_number("weight_decay", group["weight_decay"], low=0.0, where=w)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                delta = state.get("delta")
                if delta is None:
                    delta = state["delta"] = torch.zeros_like(p)
                delta.mul_(momentum).add_(grad, alpha=-lr)  # delta(t) = -lr * g + momentum * delta(t-1)
                p.add_(delta)
        return loss

    def gain_groups(self) -> list[dict[str, Any]]:
        """The param groups holding adaptive gains."""
        return [g for g in self.param_groups if g["gain"]]
