"""The drift reference: what the training data and the model's outputs looked like.

Saved with every model (``reference.json`` in the model folder) and compared with what a
server sees later (``honing.serve``'s drift monitor). Plain JSON, no pickle:

* ``features`` (tabular models): per raw column, in the model's column order,
  ``{"name", "kind": "numeric", "sample": [float], "unique": int, "missing": share}`` with a
  seeded sample of up to ``sample`` training values, or ``{"name", "kind": "categorical",
  "counts": {category: rows}, "missing": share}`` over every training row;
* ``outputs``: a seeded sample of the model's outputs (logits or values, ``(n, k)``) on
  held-out rows, which the monitor compares for any input kind;
* ``embeddings`` (images, text): a seeded sample of the model's penultimate features on the
  same rows (``embed``: the input of the last linear layer the forward pass runs, the head),
  projected to at most ``EMBED_DIM`` dimensions by a seeded Gaussian projection
  (``{"rows": [[float]], "width": d, "projection_seed": s}``; distances, and so the kernel
  test on them, are kept up to a small factor);
* ``predictions``: on the validation rows, ``{"kind": "classes", "counts": {class: rows},
  "accuracy", "confidence"}`` (mean top-class probability: the label-free accuracy estimate
  scales by their ratio) or ``{"kind": "values", "sample": [float]}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from honing.data._preprocess import is_missing, to_category

__all__ = ["EMBED_DIM", "PROFILE_VERSION", "embed", "embedding_profile", "feature_profile", "output_profile",
           "prediction_profile", "project"]

PROFILE_VERSION = 1
EMBED_DIM = 64  # embeddings wider than this are projected (the reference stays small)
EMBED_ROWS = 300


def _sample_index(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _round(values: np.ndarray) -> list[float]:
    """Floats to 7 significant digits (the JSON stays small; the tests do not notice)."""
    return [float(f"{v:.7g}") for v in values.tolist()]


def numeric_values(column: Sequence[Any]) -> np.ndarray:
    """The present values of a raw numeric column as float64 (missing and unparseable ones left out)."""
    out = []
    for v in column:
        if is_missing(v):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f):
            out.append(f)
    return np.asarray(out, dtype=np.float64)


def category_counts(column: Sequence[Any]) -> Counter[str]:
    return Counter(c for c in (to_category(v) for v in column) if c is not None)


def feature_profile(raw_x: np.ndarray, columns: Sequence[str], kinds: Sequence[str], *, sample: int = 2000,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Per raw column of ``raw_x`` ``(N, len(columns))`` its reference (see the module docstring)."""
    n = len(raw_x)
    idx = _sample_index(n, sample, seed)
    out: list[dict[str, Any]] = []
    for j, (name, kind) in enumerate(zip(columns, kinds)):
        column = raw_x[:, j]
        missing = sum(is_missing(v) for v in column) / max(n, 1)
        if kind == "numeric":
            values = numeric_values(column[idx])
            out.append({"name": str(name), "kind": "numeric", "sample": _round(values),
                        "unique": int(len(np.unique(numeric_values(column)))), "missing": round(missing, 6)})
        else:
            counts = category_counts(column)
            out.append({"name": str(name), "kind": "categorical", "counts": dict(sorted(counts.items())),
                        "missing": round(missing, 6)})
    return out


def output_profile(outputs: torch.Tensor, *, sample: int = 500, seed: int = 0) -> list[list[float]]:
    """A seeded sample of model outputs ``(N, k)`` as rows of floats."""
    out = outputs.detach().float().reshape(len(outputs), -1).numpy()
    return [_round(row) for row in out[_sample_index(len(out), sample, seed)]]


def prediction_profile(outputs: torch.Tensor, *, task: str, labels: torch.Tensor | None = None,
                       class_names: Sequence[str] | None = None, sample: int = 2000, seed: int = 0) -> dict[str, Any]:
    """What the model predicted on reference rows (``outputs``: logits or prepared values)."""
    if task == "classification":
        probs = torch.softmax(outputs.float(), dim=1)
        conf, top = probs.max(dim=1)
        names = list(class_names) if class_names else [str(i) for i in range(outputs.shape[1])]
        counts = Counter(names[i] for i in top.tolist())
        result: dict[str, Any] = {"kind": "classes", "counts": {c: counts.get(c, 0) for c in names},
                                  "confidence": round(float(conf.mean()), 6)}
        if labels is not None and len(labels):
            result["accuracy"] = round(float((top == labels).float().mean()), 6)
        return result
    values = outputs.detach().float().reshape(len(outputs), -1)[:, 0].numpy()
    return {"kind": "values", "sample": _round(values[_sample_index(len(values), sample, seed)])}


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor, *, batch: int = 256) -> torch.Tensor | None:
    """The model's penultimate features on ``x``: the input of the last ``nn.Linear`` its forward
    pass runs (the head), ``(n, d)``; token or patch dimensions are averaged. None when the forward
    pass runs no linear layer."""
    seen: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            seen.append(args[0])

    hooks = [m.register_forward_pre_hook(keep) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    was_training = model.training
    model.eval()
    parts: list[torch.Tensor] = []
    try:
        for chunk in x.split(batch):
            seen.clear()
            model(chunk)
            if not seen:
                return None
            h = seen[-1].detach().float()
            h = h.reshape(len(chunk), -1, h.shape[-1]).mean(dim=1) if h.dim() > 2 else h.reshape(len(chunk), -1)
            parts.append(h.cpu())
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.cat(parts) if parts else None


def project(features: np.ndarray, seed: int, dim: int = EMBED_DIM) -> np.ndarray:
    """``(n, d)`` -> ``(n, min(d, dim))``: a seeded Gaussian random projection (the same seed and
    width give the same matrix), identity when ``d <= dim``."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    d = features.shape[1]
    if d <= dim:
        return features
    matrix = np.random.default_rng(seed).standard_normal((d, dim)) / np.sqrt(dim)
    return features @ matrix


def embedding_profile(features: torch.Tensor, *, sample: int = EMBED_ROWS, seed: int = 0) -> dict[str, Any]:
    """A seeded sample of embeddings ``(N, d)``, projected (see ``project``), as JSON."""
    f = features.detach().float().reshape(len(features), -1).numpy()
    rows = project(f[_sample_index(len(f), sample, seed)], seed)
    return {"rows": [_round(r) for r in rows], "width": int(f.shape[1]), "projection_seed": int(seed)}
