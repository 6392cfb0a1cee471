"""Adversarial attacks on a classifier, in the data's own units (see ``InputSpace``).

=========  ==========================================================================
``fgsm``   one signed-gradient step of size epsilon (Goodfellow et al., 2015)
``pgd``    projected gradient descent, L-inf or L2, random start and restarts, the worst
           of the restarts kept per row (Madry et al., 2018)
``apgd``   APGD-CE: PGD with momentum and a step size halved at checkpoints where progress
           stalls, no step size to tune (Croce and Hein, 2020)
``square`` a black-box attack that uses only the model's scores: random square patches of
           +-epsilon kept when they lower the margin (Andriushchenko et al., 2020), L-inf
=========  ==========================================================================

Each takes model inputs ``x`` (as the model sees them) and labels ``y`` and returns an
``AttackResult`` whose ``x`` are adversarial model inputs within ``epsilon`` of ``x`` (in the
space's units) and inside the data's range; ``losses`` is the mean attack loss per step
(cross-entropy; the margin for ``square``). The model runs in eval mode during an attack and is
put back in the mode it was in; its parameters get no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError, check_int, check_number
from honing.robust._space import InputSpace

__all__ = ["ATTACKS", "AttackResult", "apgd", "fgsm", "pgd", "square"]

NORMS = ("linf", "l2")


@dataclass
class AttackResult:
    """Adversarial model inputs ``x``; ``losses``: the mean attack loss per step."""

    x: torch.Tensor
    losses: list[float] = field(default_factory=list)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _checked(epsilon: float, norm: str, space: InputSpace | None) -> InputSpace:
    check_number("epsilon", epsilon, low=0)
    if norm not in NORMS:
        raise ConfigError(f"invalid norm: got {norm!r}; allowed: {', '.join(NORMS)}")
    return space if space is not None else InputSpace.identity()


def _norm2(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (d.dim() - 1)))


def _project(u: torch.Tensor, u0: torch.Tensor, epsilon: float, norm: str, space: InputSpace) -> torch.Tensor:
    """``u`` moved into the epsilon ball around ``u0``, then into the data's range."""
    d = space.masked(u - u0)
    if norm == "linf":
        d = d.clamp(-epsilon, epsilon)
    else:
        d = d * torch.clamp(epsilon / _norm2(d), max=1.0)
    return space.clip(u0 + d)


def _step(g: torch.Tensor, norm: str, space: InputSpace) -> torch.Tensor:
    """The ascent direction of gradient ``g``: its sign (L-inf) or its unit vector (L2)."""
    g = space.masked(g)
    return g.sign() if norm == "linf" else g / _norm2(g)


def _random_start(u0: torch.Tensor, epsilon: float, norm: str, space: InputSpace,
                  gen: torch.Generator) -> torch.Tensor:
    noise = torch.rand(u0.shape, generator=gen, device=gen.device, dtype=u0.dtype) * 2 - 1
    if norm == "l2":
        noise = torch.randn(u0.shape, generator=gen, device=gen.device, dtype=u0.dtype)
        radius = torch.rand(u0.shape[0], generator=gen, device=gen.device, dtype=u0.dtype)
        noise = noise / _norm2(noise) * radius.reshape(-1, *([1] * (u0.dim() - 1)))
    return _project(u0 + epsilon * space.masked(noise), u0, epsilon, norm, space)


def _gradient(loss_fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row losses at ``u`` and their gradient with respect to ``u``."""
    u = u.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = loss_fn(u)
        (g,) = torch.autograd.grad(losses.sum(), u)
    return losses.detach(), g.detach()


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *,
         space: InputSpace | None = None) -> AttackResult:
    """One step of size ``epsilon`` along the sign of the loss's gradient (L-inf)."""
    space = _checked(epsilon, "linf", space)
    u0 = space.to_units(x)

    def loss_fn(u: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(space.to_model(u)), y, reduction="none")

    with eval_mode(model):
        losses, g = _gradient(loss_fn, u0)
        u = _project(u0 + epsilon * _step(g, "linf", space), u0, epsilon, "linf", space)
        with torch.no_grad():
            after = loss_fn(u)
    return AttackResult(space.to_model(u).detach(), [float(losses.mean()), float(after.mean())])


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, norm: str = "linf",
        steps: int = 10, step_size: float | None = None, restarts: int = 1, random_start: bool = True,
        seed: int = 0, space: InputSpace | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> AttackResult:
    """Projected gradient ascent on the loss, ``steps`` steps of ``step_size`` (default
    ``2.5 * epsilon / steps``) from a random point of the ball; with ``restarts`` > 1 each row
    keeps the restart that misclassifies it, else the one with the highest loss. ``loss``:
    per-row loss of (logits, y) to raise (default cross-entropy)."""
    space = _checked(epsilon, norm, space)
    check_int("steps", steps, low=1)
    check_int("restarts", restarts, low=1)
    alpha = 2.5 * epsilon / steps if step_size is None else float(step_size)
    loss_of = loss or (lambda logits, t: F.cross_entropy(logits, t, reduction="none"))
    u0 = space.to_units(x).detach()
    gen = _generator(seed, x.device)

    def loss_fn(u: torch.Tensor) -> torch.Tensor:
        return loss_of(model(space.to_model(u)), y)

    best_u, best_loss, best_wrong = u0.clone(), None, None
    curve: list[float] = []
    with eval_mode(model):
        for restart in range(restarts):
            u = _random_start(u0, epsilon, norm, space, gen) if random_start and epsilon > 0 else u0.clone()
            for _ in range(steps):
                losses, g = _gradient(loss_fn, u)
                if restart == 0:
                    curve.append(float(losses.mean()))
                u = _project(u + alpha * _step(g, norm, space), u0, epsilon, norm, space)
            with torch.no_grad():
                logits = model(space.to_model(u))
                losses, wrong = loss_of(logits, y), logits.argmax(1) != y
            if restart == 0:
                curve.append(float(losses.mean()))
            if best_loss is None:
                best_u, best_loss, best_wrong = u, losses, wrong
                continue
            better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (losses > best_loss))
            pick = better.reshape(-1, *([1] * (u.dim() - 1)))
            best_u = torch.where(pick, u, best_u)
            best_loss, best_wrong = torch.where(better, losses, best_loss), wrong | best_wrong
    return AttackResult(space.to_model(best_u).detach(), curve)


def _checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints: the first after 22% of the steps, each interval 3% of the steps shorter
    than the last, never shorter than 6% (p(j+1) = p(j) + max(p(j) - p(j-1) - 0.03, 0.06))."""
    gap, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, k = [0], 0
    while k + gap <= steps:
        k += gap
        points.append(k)
        gap = max(gap - shrink, least)
    return points


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, norm: str = "linf",
         steps: int = 100, seed: int = 0, space: InputSpace | None = None, rho: float = 0.75) -> AttackResult:
    """APGD-CE: momentum 0.75, step size ``2 * epsilon`` halved at a checkpoint when fewer than
    ``rho`` of the steps since the last one raised the loss, or when neither the step size nor
    the best loss changed; each halving restarts from the best point. Returns, per row, an
    iterate that misclassifies it when one did, else the highest-loss point."""
    space = _checked(epsilon, norm, space)
    check_int("steps", steps, low=1)
    u0 = space.to_units(x).detach()
    gen = _generator(seed, x.device)
    shape = (-1, *([1] * (x.dim() - 1)))

    def loss_fn(u: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(space.to_model(u)), y, reduction="none")

    checks = set(_checkpoints(steps))
    with eval_mode(model):
        u = _random_start(u0, epsilon, norm, space, gen) if epsilon > 0 else u0.clone()
        eta = torch.full((x.shape[0],), 2.0 * epsilon, device=x.device, dtype=u0.dtype)
        losses, g = _gradient(loss_fn, u)
        best_u, best_loss = u.clone(), losses.clone()
        adv_u, fooled = u.clone(), _wrong(model, space, u, y)
        curve = [float(losses.mean())]
        prev = u.clone()
        u_next = _project(u + eta.reshape(shape) * _step(g, norm, space), u0, epsilon, norm, space)
        gains = torch.zeros_like(eta)
        last_check, eta_at_check, best_at_check = 0, eta.clone(), best_loss.clone()
        for k in range(1, steps + 1):
            prev_loss = losses
            prev, u = u, u_next
            losses, g = _gradient(loss_fn, u)
            curve.append(float(losses.mean()))
            gains += (losses > prev_loss).to(gains)
            wrong = _wrong(model, space, u, y)
            new = wrong & ~fooled
            adv_u[new] = u[new]
            fooled |= wrong
            up = losses > best_loss
            best_u[up], best_loss[up] = u[up], losses[up]
            if k in checks:
                stalled = (gains < rho * (k - last_check)) | ((eta_at_check == eta) & (best_at_check == best_loss))
                eta = torch.where(stalled, eta / 2, eta)
                u = torch.where(stalled.reshape(shape), best_u, u)
                if bool(stalled.any()):
                    losses, g = _gradient(loss_fn, u)
                last_check, eta_at_check, best_at_check = k, eta.clone(), best_loss.clone()
                gains.zero_()
            if k == steps:
                break
            z = _project(u + eta.reshape(shape) * _step(g, norm, space), u0, epsilon, norm, space)
            u_next = _project(u + 0.75 * (z - u) + 0.25 * (u - prev), u0, epsilon, norm, space)
    out = torch.where(fooled.reshape(shape), adv_u, best_u)
    return AttackResult(space.to_model(out).detach(), curve)


def _wrong(model: nn.Module, space: InputSpace, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(space.to_model(u)).argmax(1) != y


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The true class's logit minus the best other one: below 0 the row is misclassified."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return true - other.max(1).values


def _square_fraction(p_init: float, it: int, queries: int) -> float:
    """The share of the features a square covers: halved at fixed points of the budget."""
    i = int(it / queries * 10000)
    for cut, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8),
                     (50, 4), (10, 2)):
        if i > cut:
            return p_init / div
    return p_init


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, queries: int = 1000,
           p_init: float = 0.05, seed: int = 0, space: InputSpace | None = None) -> AttackResult:
    """The Square attack (L-inf), black-box: it reads the model's scores, never a gradient.
    Starts from vertical stripes of +-epsilon; each query changes one random square per row (a
    segment for flat inputs) to new +-epsilon values per channel (never the values it has) and
    keeps it for rows whose margin drops. Rows already misclassified are left alone."""
    space = _checked(epsilon, "linf", space)
    check_int("queries", queries, low=1)
    gen = _generator(seed, torch.device("cpu"))
    u0 = space.to_units(x).detach()
    n = x.shape[0]
    img = u0.reshape(n, 1, 1, -1) if u0.dim() < 4 else u0.reshape(n, u0.shape[1], u0.shape[2], -1)
    c, h, w = img.shape[1:]

    def margin(u_img: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _margin(model(space.to_model(u_img.reshape((len(rows), *x.shape[1:])))), y[rows])

    def clipped(rows: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        base = img[rows]
        d = space.masked(delta.reshape((len(rows), *x.shape[1:]))).reshape(base.shape)
        return space.clip((base + d).reshape((len(rows), *x.shape[1:]))).reshape(base.shape)

    signs = torch.randint(0, 2, (n, c, 1, w), generator=gen).to(u0) * 2 - 1
    delta = (epsilon * signs).expand(n, c, h, w).clone()
    every = torch.arange(n, device=x.device)
    with eval_mode(model):
        adv = clipped(every, delta)
        best = margin(adv, every)
        curve = [float(best.mean())]
        for it in range(queries - 1):
            todo = every[best > 0]
            if len(todo) == 0:
                break
            p = _square_fraction(p_init, it, queries)
            side = max(1, min(h, w, round(math.sqrt(p * h * w)))) if h > 1 else 1
            length = side if h > 1 else max(1, min(w, round(p * w)))
            k = len(todo)
            tops = torch.randint(0, h - side + 1, (k,), generator=gen).to(x.device)  # a window per row
            lefts = torch.randint(0, w - length + 1, (k,), generator=gen).to(x.device)
            hh, ww = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
            rows_in = (hh >= tops[:, None]) & (hh < tops[:, None] + side)  # (k, h)
            cols_in = (ww >= lefts[:, None]) & (ww < lefts[:, None] + length)  # (k, w)
            window = rows_in[:, None, :, None] & cols_in[:, None, None, :]  # (k, 1, h, w)
            trial = delta[todo].clone()
            patch = ((torch.randint(0, 2, (k, c, 1, 1), generator=gen).to(u0) * 2 - 1) * epsilon).expand_as(trial)
            same = ((trial == patch) | ~window).flatten(1).all(1)  # the window would not change: flip it
            patch = torch.where(same[:, None, None, None], -patch, patch)
            trial = torch.where(window, patch, trial)
            cand = clipped(todo, trial)
            m = margin(cand, todo)
            better = m < best[todo]
            keep = todo[better]
            delta[keep] = trial[better]
            adv[keep] = cand[better]
            best[keep] = m[better]
            curve.append(float(best.mean()))
    return AttackResult(space.to_model(adv.reshape(x.shape)).detach(), curve)


ATTACKS = {"fgsm": fgsm, "pgd": pgd, "apgd": apgd, "square": square}
