"""Learning-rate range test: train with an exponentially rising lr and watch the loss.

The lr goes from ``start_lr`` to ``end_lr`` geometrically over ``num_steps`` mini-batch steps;
the loss is smoothed with an exponential moving average (bias-corrected) and the test stops
early once the smoothed loss exceeds ``diverge_factor`` times its best value (or is not
finite). The suggestion is the lr where the smoothed loss falls fastest against ``log(lr)``
(steepest negative slope), searched between the first tenth of the points (at most 10 are
skipped) and the point of minimum loss; when that stretch is shorter than 3 points, the
suggestion is the lr at the minimum smoothed loss divided by 10.

Model weights, buffers, train/eval mode, the optimizer state (lrs included) and the global
RNG state are restored afterwards, so the range test leaves no trace.

Reference: L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from honing._core import ConfigError, capture_rng_state, check_int, check_number, restore_rng_state


@dataclass(frozen=True)
class LRFinderResult:
    """``lrs[i]`` (of the group with the largest lr) gave the smoothed loss ``losses[i]``."""

    lrs: list[float]
    losses: list[float]
    suggestion: float
    raw_losses: list[float]
    diverged: bool


def _suggest(lrs: list[float], losses: list[float]) -> float:
    n = len(losses)
    best = int(np.argmin(losses))
    skip = min(10, n // 10)
    if best - skip + 1 >= 3:
        region = np.asarray(losses[skip : best + 1])
        slopes = np.gradient(region, np.log(np.asarray(lrs[skip : best + 1])))
        return float(lrs[skip + int(np.argmin(slopes))])
    return float(lrs[best] / 10)


def lr_find(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 64,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    seed: int = 0,
) -> LRFinderResult:
    """Run the LR range test on ``(x, y)`` and restore model and optimizer (see module docstring).

    Param groups keep their lr ratios (layer decay): the group with the largest lr follows the
    range, the others are scaled by the same factor; ``lrs`` and ``suggestion`` refer to it.
    The optimizer's ``step`` is always given a closure, so LBFGS works too.
    """
    start = check_number("start_lr", start_lr, low=0.0, low_inclusive=False)
    end = check_number("end_lr", end_lr, low=start, low_inclusive=False)
    steps = check_int("num_steps", num_steps, low=2)
    batch = check_int("batch_size", batch_size, low=1)
    beta = check_number("smooth", smooth, low=0.0, high=1.0, high_inclusive=False)
    factor = check_number("diverge_factor", diverge_factor, low=1.0, low_inclusive=False)
    check_int("seed", seed)
    assert start is not None and end is not None and steps is not None and batch is not None
    assert beta is not None and factor is not None
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"invalid x, y: got {len(x)} and {len(y)} rows; allowed: the same number > 0")

    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    rng_state = capture_rng_state()
    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(group_lrs)
    ratios = [lr / top if top > 0 else 1.0 for lr in group_lrs]

    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    diverged = False
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    cursor = 0
    avg = 0.0
    best = math.inf
    try:
        model.train()
        for i in range(steps):
            lr = start * (end / start) ** (i / (steps - 1))
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            if cursor + batch > len(x):
                order, cursor = torch.randperm(len(x), generator=gen), 0
            idx = order[cursor : cursor + batch]
            cursor += batch
            xb, yb = x[idx], y[idx]

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                return loss

            out = optimizer.step(closure)
            value = float(out.detach()) if isinstance(out, torch.Tensor) else float(out)
            if not math.isfinite(value):
                diverged = True
                break
            avg = beta * avg + (1 - beta) * value
            debiased = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(debiased)
            best = min(best, debiased)
            if debiased > factor * best:
                diverged = True
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)
        restore_rng_state(rng_state)
    if not lrs:
        raise ConfigError(f"invalid start_lr: got {start}; the loss was not finite at the first step; allowed: a smaller lr")
    return LRFinderResult(lrs, smoothed, _suggest(lrs, smoothed), raw, diverged)
