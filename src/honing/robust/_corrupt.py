"""Common image corruptions, five severities each (the levels of CIFAR-10-C, Hendrycks and
Dietterich, 2019), applied in the data's [0, 1] pixel units and clipped to its range.

``gaussian_noise``: additive noise of standard deviation 0.04, 0.06, 0.08, 0.09, 0.10;
``gaussian_blur``: a Gaussian kernel of sigma 0.4, 0.6, 0.7, 0.8, 1.0 pixels;
``contrast``: each image's deviation from its mean scaled by 0.75, 0.5, 0.4, 0.3, 0.15.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from honing._core import ConfigError, check_int
from honing.robust._space import InputSpace

__all__ = ["CORRUPTIONS", "corrupt"]

_LEVELS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
}
CORRUPTIONS = tuple(_LEVELS)


def corrupt(x: torch.Tensor, name: str, severity: int, *, space: InputSpace | None = None,
            seed: int = 0) -> torch.Tensor:
    """Model inputs ``x`` (images ``(N, C, H, W)``) corrupted by ``name`` at ``severity`` 1-5."""
    if name not in _LEVELS:
        raise ConfigError(f"invalid corruption: got {name!r}; allowed: {', '.join(CORRUPTIONS)}")
    check_int("severity", severity, low=1, high=5)
    if x.dim() != 4:
        raise ConfigError(f"corruptions apply to images (N, C, H, W); got inputs of shape {tuple(x.shape)}")
    space = space or InputSpace.identity()
    u = space.to_units(x)
    level = _LEVELS[name][severity - 1]
    if name == "gaussian_noise":
        gen = torch.Generator(device=x.device).manual_seed(seed)
        u = u + level * torch.randn(u.shape, generator=gen, device=x.device, dtype=u.dtype)
    elif name == "gaussian_blur":
        u = _blur(u, level)
    else:
        mean = u.mean(dim=(1, 2, 3), keepdim=True)
        u = (u - mean) * level + mean
    return space.to_model(space.clip(u))


def _blur(u: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=u.dtype, device=u.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = u.shape[1]
    pad = min(radius, u.shape[2] - 1, u.shape[3] - 1)
    if pad < radius:  # images smaller than the kernel: edge padding
        out = F.pad(u, (radius, radius, radius, radius), mode="replicate")
    else:
        out = F.pad(u, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # (N, C, H+2r, W)
    return F.conv2d(out, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # (N, C, H, W)
