"""Maps between a fold's preprocessing and the model folder's: what lets a model trained on one
cross-validation fold take the folder's inputs."""

from __future__ import annotations

import torch

from honing._core import DataError
from honing.ensemble._model import Affine


def fit_affine(source: torch.Tensor, target: torch.Tensor, *, what: str, tol: float = 1e-3) -> Affine | None:
    """The per-feature ``target = source * scale + shift`` that holds on these rows (least
    squares per feature), or None when ``target`` equals ``source``; a DataError when no such
    map fits within ``tol`` (relative to each feature's spread): then the two preprocessings
    differ by more than scaling (e.g. a category one fold never saw)."""
    if source.shape != target.shape:
        raise DataError(f"{what}: the two preprocessings give shapes {tuple(source.shape)} and {tuple(target.shape)}")
    if not source.is_floating_point():  # token ids: only the same ids will do
        if torch.equal(source, target):
            return None
        raise DataError(f"{what}: the fold's token ids differ from the model folder's")
    s, t = source.double(), target.double()
    if torch.allclose(s, t, rtol=0, atol=1e-6):
        return None
    s_mean, t_mean = s.mean(0), t.mean(0)
    sc, tc = s - s_mean, t - t_mean
    var = sc.pow(2).mean(0)
    flat = var <= 1e-12  # a constant feature: only a shift
    scale = torch.where(flat, torch.ones_like(var), (sc * tc).mean(0) / var.clamp_min(1e-12))
    shift = t_mean - scale * s_mean
    err = (s * scale + shift - t).abs().amax(0)
    spread = t.std(0, unbiased=False).clamp_min(1.0)
    worst = float((err / spread).max())
    if worst > tol:
        raise DataError(f"{what}: the fold's preprocessing is not a rescaling of the model folder's (largest "
                        f"mismatch {worst:.3g} of a feature's spread; missing values imputed differently, or a "
                        "category one fold never saw)")
    return Affine(scale.float(), shift.float())
