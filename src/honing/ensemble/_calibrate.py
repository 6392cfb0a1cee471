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


def checked_temperature(logits: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> tuple[float, str]:
    """``fit_temperature`` on all rows, kept only when it also lowers the log loss of rows it was
    not fitted on (2-fold: a temperature fitted on each half, scored on the other); else 1.

    On a small or nearly separable validation split the fitted temperature runs to its bound
    (0.05: every prediction made nearly certain) and the test log loss gets worse, not better:
    on wine (151 out-of-fold rows) one seed's test log loss went from 0.12 to 0.30. Returns the
    temperature and why."""
    n = len(y)
    if n < 20:
        return 1.0, f"not fitted: {n} rows"
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    halves = (order[: n // 2], order[n // 2:])
    z = logits.detach().double()
    plain = scaled = 0.0
    for fit_rows, score_rows in (halves, halves[::-1]):
        t = fit_temperature(z[fit_rows], y[fit_rows])
        plain += float(F.cross_entropy(z[score_rows], y[score_rows], reduction="sum"))
        scaled += float(F.cross_entropy(z[score_rows] / t, y[score_rows], reduction="sum"))
    if scaled >= plain:
        return 1.0, (f"not applied: a temperature fitted on half the rows raised the other half's log loss "
                     f"({scaled / n:.4g} against {plain / n:.4g})")
    t = fit_temperature(z, y)
    return t, f"fitted on {n} rows; on rows it was not fitted on it lowered the log loss from {plain / n:.4g} to {scaled / n:.4g}"
