"""Calibration: how far a classifier's confidence is from its accuracy, and one number that fixes
most of it.

- ``expected_calibration_error``: rows binned by their top probability into equal-width bins;
  the bins' |accuracy - mean confidence|, weighted by their share of rows (Naeini et al., AAAI
  2015; Guo et al., "On calibration of modern neural networks", ICML 2017).
- ``fit_temperature``: one temperature ``T`` dividing the logits, fitted on held-out rows by
  minimising their log loss (Guo et al.); the predicted class does not change.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from honing._core import ConfigError, check_int


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, *, bins: int = 15) -> float:
    """ECE of class probabilities ``probs`` ``(N, K)`` against labels ``y`` ``(N,)``, in [0, 1]."""
    bins = check_int("bins", bins, low=1)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ConfigError(f"invalid probs: got shape {tuple(probs.shape)} for {len(y)} labels; allowed: (N, K)")
    if len(y) == 0:
        return float("nan")
    conf, pred = probs.double().max(-1)
    correct = (pred == y).double()
    # bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of 0 joins the first bin
    idx = (conf * bins).ceil().long().clamp(1, bins) - 1
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += float(mask.double().mean()) * abs(float(correct[mask].mean() - conf[mask].mean()))
    return ece


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, *, max_iter: int = 100) -> float:
    """The temperature ``T`` (``softmax(logits / T)``) that minimises the log loss on these rows;
    in [0.05, 20]. ``logits`` may be log-probabilities (an ensemble's output)."""
    if logits.ndim != 2 or len(logits) != len(y) or len(y) == 0:
        raise ConfigError(f"invalid logits: got shape {tuple(logits.shape)} for {len(y)} labels; allowed: (N, K), N > 0")
    z = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not math.isfinite(t):
        return 1.0
    return min(max(t, 0.05), 20.0)
