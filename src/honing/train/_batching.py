"""Batches from pre-built tensors: no DataLoader, one seeded permutation per epoch."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

import torch

from honing._core import ConfigError
from honing.train._config import TrainConfig

Data = Any  # a Split-like object with .x and .y, or a tuple (x, y)

_GATHER_BYTES = 1 << 30  # up to this size, gather the whole epoch at once and slice views


def as_tensors(data: Data, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) from a Split-like object or a pair, checked to be tensors with the same row count."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    else:
        raise ConfigError(f"invalid {where} data: got {type(data).__name__}; allowed: a Split with .x and .y, or (x, y)")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigError(f"invalid {where} data: x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() == 0 or y.dim() == 0 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        rows = lambda t: t.shape[0] if t.dim() else "no"  # noqa: E731
        raise ConfigError(f"invalid {where} data: x has {rows(x)} rows and y has {rows(y)}; allowed: the same number, > 0")
    return x, y


def epoch_batches(
    x: torch.Tensor, y: torch.Tensor, config: TrainConfig, generator: torch.Generator
) -> tuple[Iterable[tuple[torch.Tensor, torch.Tensor]], list[int]]:
    """This epoch's (x, y) batches and their sizes.

    With shuffling, batch ``i`` holds rows ``perm[i * B:(i + 1) * B]`` where
    ``perm = torch.randperm(N, generator=generator)`` (one draw per epoch, on the CPU).
    Full-batch mode (``batch_size=None``) neither shuffles nor draws.
    """
    n = x.shape[0]
    size = n if config.batch_size is None else config.batch_size
    count = config.batches_per_epoch(n)
    sizes = [size] * count
    if not config.drop_last and n % size:
        sizes[-1] = n % size
    if not config.shuffle or config.batch_size is None:
        return islice(zip(x.split(size), y.split(size)), count), sizes
    perm = torch.randperm(n, generator=generator).to(x.device)  # (N,)
    if x.nbytes + y.nbytes <= _GATHER_BYTES:  # one gather per epoch, then views
        return islice(zip(x[perm].split(size), y[perm].split(size)), count), sizes
    return ((x[idx], y[idx]) for idx in perm.split(size)[:count]), sizes
