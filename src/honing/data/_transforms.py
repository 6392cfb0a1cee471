"""Batched augmentation transforms, vectorized over the batch (no per-sample Python loops).

Every transform is called as ``t(x, y, generator) -> (x, y)`` and never changes its inputs in
place. Random numbers come from the given CPU ``torch.Generator`` and are moved to ``x.device``.

References: mixup, Zhang et al. 2018 (arXiv:1710.09412); CutMix, Yun et al. 2019
(arXiv:1905.04899); random erasing, Zhong et al. 2020 (arXiv:1708.04896); swap noise for
tabular data, the Porto Seguro winning solution (M. Jahrer, 2018).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from honing._core import ConfigError, check_choice, check_int, check_number, check_probability


def _pair(name: str, value: Any, *, low: float, high: float | None = None, low_inclusive: bool = True) -> tuple[float, float]:
    """A (lo, hi) pair of numbers in range with lo <= hi."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"invalid {name}: got {value!r}; allowed: a pair [low, high]")
    lo = check_number(name, value[0], low=low, high=high, low_inclusive=low_inclusive)
    hi = check_number(name, value[1], low=low, high=high, low_inclusive=low_inclusive)
    assert lo is not None and hi is not None
    if lo > hi:
        raise ConfigError(f"invalid {name}: got {value!r}; allowed: a pair [low, high] with low <= high")
    return lo, hi


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (hi - lo) + lo).to(device=like.device, dtype=like.dtype)


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))  # (N,) -> (N, 1, ...)


def _need(x: torch.Tensor, ndim: int, what: str, name: str) -> None:
    if x.dim() != ndim:
        raise ConfigError(f"{name} needs {what}; got x of shape {tuple(x.shape)}: remove it from the augmentation")


def _beta(alpha: float, g: torch.Generator) -> float:
    """One draw from Beta(alpha, alpha) by inverting the CDF of a uniform draw from ``g``."""
    from scipy.special import betaincinv

    u = float(torch.rand(1, generator=g))
    return float(betaincinv(alpha, alpha, min(max(u, 1e-12), 1 - 1e-12)))


def affine_theta(
    angle: torch.Tensor, shear: torch.Tensor, zoom: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
    *, height: int, width: int,
) -> torch.Tensor:
    """``affine_grid`` matrices (N, 2, 3) for per-sample forward maps (angles in radians,
    with the image y axis pointing down, a positive angle turns clockwise on screen; shifts are
    fractions of the width and height).

    The forward map in pixel units about the centre is ``A = zoom * R(angle) @ Shear_x(shear)``
    plus a shift; ``affine_grid`` wants its inverse (output -> input) in normalized
    coordinates, ``D^-1 A^-1 D`` with ``D = diag(W/2, H/2)``.
    """
    n = angle.shape[0]
    cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
    a = torch.stack([torch.stack([cos, cos * tan - sin], -1), torch.stack([sin, sin * tan + cos], -1)], -2)
    a = a * zoom.view(n, 1, 1)  # (N, 2, 2)
    d = torch.tensor([width / 2.0, height / 2.0], dtype=a.dtype)
    inv = torch.linalg.inv(a) * d.view(1, 1, 2) / d.view(1, 2, 1)
    shift = torch.stack([2 * tx, 2 * ty], -1).unsqueeze(-1)  # (N, 2, 1) normalized translation
    return torch.cat([inv, -inv @ shift], dim=2)  # (N, 2, 3)


class Transform:
    """Base class. ``mixes_labels``: the transform returns soft targets ``(N, num_classes)``."""

    name: ClassVar[str] = ""
    mixes_labels: ClassVar[bool] = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomAffine(Transform):
    """Random rotation, shear, scale and translation of images ``(N, C, H, W)`` in one
    ``affine_grid`` / ``grid_sample`` call, with parameters drawn per sample.

    ``rotation`` and ``shear`` in degrees (uniform in [-v, v]); ``scale`` a (lo, hi) zoom range;
    ``translate`` (fx, fy) fractions of the width and height; ``p`` per-sample probability.
    """

    name = "random_affine"

    def __init__(
        self,
        rotation: float = 0.0,
        shear: float = 0.0,
        scale: tuple[float, float] = (1.0, 1.0),
        translate: tuple[float, float] = (0.0, 0.0),
        p: float = 1.0,
        padding_mode: str = "zeros",
    ) -> None:
        self.rotation = check_number("rotation", rotation, low=0.0, high=180.0)
        self.shear = check_number("shear", shear, low=0.0, high=60.0)
        self.scale = _pair("scale", scale, low=0.0, low_inclusive=False)
        self.translate = _pair("translate", translate, low=0.0, high=1.0)
        self.p = check_probability("p", p, allow_one=True)
        self.padding_mode = check_choice("padding_mode", padding_mode, ("zeros", "border", "reflection"))

    @property
    def is_identity(self) -> bool:
        return self.p == 0 or (self.rotation == 0 and self.shear == 0 and self.scale == (1.0, 1.0)
                               and self.translate == (0.0, 0.0))

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _need(x, 4, "image batches (N, C, H, W)", "RandomAffine")
        if self.is_identity:
            return x, y
        n, _, h, w = x.shape
        g, dt = generator, torch.float64
        proto = torch.empty(0, dtype=dt)
        on = (torch.rand(n, generator=g) < self.p).to(dt)  # per-sample: apply or not
        angle = _uniform(n, -self.rotation, self.rotation, g, proto).deg2rad() * on
        shear = _uniform(n, -self.shear, self.shear, g, proto).deg2rad() * on
        zoom = 1 + (_uniform(n, *self.scale, g, proto) - 1) * on
        tx = _uniform(n, -self.translate[0], self.translate[0], g, proto) * on
        ty = _uniform(n, -self.translate[1], self.translate[1], g, proto) * on
        theta = affine_theta(angle, shear, zoom, tx, ty, height=h, width=w).to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False), y


class HorizontalFlip(Transform):
    """Mirror images ``(N, C, H, W)`` left-right with probability ``p`` per sample."""

    name = "horizontal_flip"

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability("p", p, allow_one=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _need(x, 4, "image batches (N, C, H, W)", "HorizontalFlip")
        on = (torch.rand(x.shape[0], generator=generator) < self.p).to(x.device)
        return torch.where(_per_sample(on, x), x.flip(-1), x), y


class Brightness(Transform):
    """Add a per-sample offset uniform in [-delta, delta] (in the units of the prepared x)."""

    name = "brightness"

    def __init__(self, delta: float = 0.2) -> None:
        self.delta = check_number("delta", delta, low=0.0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.delta == 0:
            return x, y
        return x + _per_sample(_uniform(x.shape[0], -self.delta, self.delta, generator, x), x), y


class Contrast(Transform):
    """Scale each sample about its own mean by a factor uniform in ``range`` (lo, hi);
    a number c means (1 - c, 1 + c)."""

    name = "contrast"

    def __init__(self, range: float | tuple[float, float] = (0.8, 1.2)) -> None:  # noqa: A002
        if isinstance(range, (int, float)) and not isinstance(range, bool):
            c = check_number("range", range, low=0.0, high=1.0)
            assert c is not None
            range = (1.0 - c, 1.0 + c)  # noqa: A001
        self.range = _pair("range", range, low=0.0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.range == (1.0, 1.0):
            return x, y
        factor = _per_sample(_uniform(x.shape[0], *self.range, generator, x), x)
        mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if x.dim() > 1 else x
        return (x - mean) * factor + mean, y


class GaussianNoise(Transform):
    """Add N(0, std^2) noise to every element."""

    name = "gaussian_noise"

    def __init__(self, std: float = 0.1) -> None:
        self.std = check_number("std", std, low=0.0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.std == 0:
            return x, y
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x + self.std * noise, y


class TabularNoise(Transform):
    """Tabular rows ``(N, F)``: swap noise (each cell replaced, with probability ``swap``, by the
    same column of a random row of the batch), then Gaussian noise of ``std``."""

    name = "tabular_noise"

    def __init__(self, std: float = 0.05, swap: float = 0.0) -> None:
        self.std = check_number("std", std, low=0.0)
        self.swap = check_probability("swap", swap)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _need(x, 2, "tabular batches (N, F)", "TabularNoise")
        n, f = x.shape
        if self.swap > 0:
            donor = torch.randint(n, (n, f), generator=generator).to(x.device)
            on = (torch.rand(n, f, generator=generator) < self.swap).to(x.device)
            x = torch.where(on, x.gather(0, donor), x)
        if self.std > 0:
            x = x + self.std * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x, y


class RandomErasing(Transform):
    """Fill one random rectangle per image with ``value``, with probability ``p`` per sample.

    Rectangle area a fraction uniform in ``area`` of the image; aspect ratio log-uniform in ``aspect``.
    """

    name = "random_erasing"

    def __init__(
        self,
        p: float = 0.5,
        area: tuple[float, float] = (0.02, 0.33),
        aspect: tuple[float, float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        self.p = check_probability("p", p, allow_one=True)
        self.area = _pair("area", area, low=0.0, high=1.0, low_inclusive=False)
        self.aspect = _pair("aspect", aspect, low=0.0, low_inclusive=False)
        self.value = check_number("value", value)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _need(x, 4, "image batches (N, C, H, W)", "RandomErasing")
        if self.p == 0:
            return x, y
        n, _, h, w = x.shape
        g = generator
        on = torch.rand(n, generator=g) < self.p
        area = (torch.rand(n, generator=g) * (self.area[1] - self.area[0]) + self.area[0]) * (h * w)
        log_lo, log_hi = math.log(self.aspect[0]), math.log(self.aspect[1])
        ratio = torch.exp(torch.rand(n, generator=g) * (log_hi - log_lo) + log_lo)
        eh = (area * ratio).sqrt().round().clamp(1, h).long()  # (N,) rectangle height
        ew = (area / ratio).sqrt().round().clamp(1, w).long()
        top = (torch.rand(n, generator=g) * (h - eh + 1)).floor().long()
        left = (torch.rand(n, generator=g) * (w - ew + 1)).floor().long()
        rows = torch.arange(h).view(1, h)
        cols = torch.arange(w).view(1, w)
        in_rows = (rows >= top.view(n, 1)) & (rows < (top + eh).view(n, 1))  # (N, H)
        in_cols = (cols >= left.view(n, 1)) & (cols < (left + ew).view(n, 1))  # (N, W)
        mask = (in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w) & on.view(n, 1, 1, 1)).to(x.device)
        return x.masked_fill(mask, self.value), y


def _soft(y: torch.Tensor, num_classes: int | None, name: str) -> torch.Tensor:
    """Integer labels -> one-hot float32 (N, num_classes); float targets unchanged."""
    if y.dtype.is_floating_point:
        return y
    if num_classes is None:
        raise ConfigError(f"{name} needs num_classes to turn integer labels into soft targets; got num_classes=None")
    return F.one_hot(y.long(), num_classes).to(torch.float32)


class Mixup(Transform):
    """Mixup: ``x = lam x + (1 - lam) x[perm]``, same for one-hot targets; lam ~ Beta(alpha, alpha)
    per batch. Works on any shape; always returns soft targets (also when skipped, ``p`` < 1)."""

    name = "mixup"
    mixes_labels = True

    def __init__(self, alpha: float = 0.2, num_classes: int | None = None, p: float = 1.0) -> None:
        self.alpha = check_number("alpha", alpha, low=0.0, low_inclusive=False)
        self.num_classes = check_int("num_classes", num_classes, low=1, allow_none=True)
        self.p = check_probability("p", p, allow_one=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = _soft(y, self.num_classes, "Mixup")
        if float(torch.rand(1, generator=generator)) >= self.p:
            return x, y
        lam = _beta(self.alpha, generator)
        perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


class CutMix(Transform):
    """CutMix: paste a box of a shuffled batch into images ``(N, C, H, W)``; targets mixed by
    the box area. Box area fraction ``1 - lam`` with lam ~ Beta(alpha, alpha) per batch."""

    name = "cutmix"
    mixes_labels = True

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, p: float = 1.0) -> None:
        self.alpha = check_number("alpha", alpha, low=0.0, low_inclusive=False)
        self.num_classes = check_int("num_classes", num_classes, low=1, allow_none=True)
        self.p = check_probability("p", p, allow_one=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _need(x, 4, "image batches (N, C, H, W)", "CutMix")
        y = _soft(y, self.num_classes, "CutMix")
        if float(torch.rand(1, generator=generator)) >= self.p:
            return x, y
        n, _, h, w = x.shape
        cut = math.sqrt(1.0 - _beta(self.alpha, generator))
        ch, cw = round(h * cut), round(w * cut)
        cy, cx = (int(v) for v in torch.randint(0, 1 << 30, (2,), generator=generator))
        cy, cx = cy % h, cx % w
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        perm = torch.randperm(n, generator=generator).to(x.device)
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        return out, lam * y + (1 - lam) * y[perm]


TRANSFORMS: tuple[type[Transform], ...] = (
    RandomAffine, HorizontalFlip, Brightness, Contrast, GaussianNoise,
    TabularNoise, RandomErasing, Mixup, CutMix,
)
