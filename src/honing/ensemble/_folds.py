"""Maps between a fold's preprocessing and the model folder's: what lets a model trained on one
cross-validation fold take the folder's inputs."""

from __future__ import annotations

import torch

from honing._core import DataError
from honing.ensemble._model import Affine


def fit_affine(source: torch.Tensor, target: torch.Tensor, *, what: str, tol: float = 1e-3,
               ignore: torch.Tensor | None = None) -> Affine | None:
    """The per-feature ``target = source * scale + shift`` that holds on these rows (least
    squares per feature), or None when ``target`` equals ``source``; a DataError when no such
    map fits within ``tol`` (relative to each feature's spread): then the two preprocessings
    differ by more than scaling (e.g. a category one fold never saw). ``ignore``: cells (the
    inputs' shape) left out of the fit and the check, e.g. the imputed ones (``imputed_gap``
    measures what the map does to them)."""
    if source.shape != target.shape:
        raise DataError(f"{what}: the two preprocessings give shapes {tuple(source.shape)} and {tuple(target.shape)}")
    if not source.is_floating_point():  # token ids: only the same ids will do
        if torch.equal(source, target):
            return None
        raise DataError(f"{what}: the fold's token ids differ from the model folder's")
    s, t = source.double(), target.double()
    if torch.allclose(s, t, rtol=0, atol=1e-6):
        return None
    w = torch.ones_like(s) if ignore is None else (~ignore.reshape(s.shape)).double()
    n = w.sum(0).clamp_min(1.0)
    s_mean, t_mean = (w * s).sum(0) / n, (w * t).sum(0) / n
    sc, tc = s - s_mean, t - t_mean
    var = (w * sc.pow(2)).sum(0) / n
    flat = var <= 1e-12  # a constant feature (or one with no cell left): only a shift
    scale = torch.where(flat, torch.ones_like(var), (w * sc * tc).sum(0) / n / var.clamp_min(1e-12))
    shift = t_mean - scale * s_mean
    err = ((s * scale + shift - t).abs() * w).amax(0)
    spread = t.std(0, unbiased=False).clamp_min(1.0)
    worst = float((err / spread).max())
    if worst > tol:
        raise DataError(f"{what}: the fold's preprocessing is not a rescaling of the model folder's (largest "
                        f"mismatch {worst:.3g} of a feature's spread; a category one fold never saw, or missing "
                        "values imputed differently)")
    return Affine(scale.float(), shift.float())


def imputed_gap(affine: Affine | None, source: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor) -> float:
    """On the ``ignore``d cells, the largest difference between ``affine(source)`` and ``target``
    relative to each feature's spread: how far a member's input is from what its fold would have
    given it there (e.g. a missing value imputed with the model folder's mean, not the fold's)."""
    if not bool(ignore.any()):
        return 0.0
    s, t = source.double(), target.double()
    mapped = s if affine is None else s * affine.scale.double() + affine.shift.double()
    spread = t.std(0, unbiased=False).clamp_min(1.0)
    return float((((mapped - t).abs() / spread) * ignore.reshape(s.shape).double()).max())
