"""Greedy ensemble selection with replacement (Caruana et al., "Ensemble selection from
libraries of models", ICML 2004), on predictions the search already made.

Each round adds the candidate (a model may be added again) whose addition gives the best
score of the running average on the selection rows; the weights are how often each candidate
was added, divided by the rounds. Starting from the best single candidate and adding with
replacement keeps the mix from overfitting a small validation split as fast as a free
weight optimisation would (Caruana's "sorted initialisation" and "selection with replacement").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from honing._core import ConfigError, check_int


@dataclass(frozen=True)
class Selection:
    """What greedy selection chose: ``weights`` (one per candidate, summing to 1), the score
    of the mix after each round (``path``, lower is better) and of each candidate alone."""

    weights: list[float]
    path: list[float]
    single: list[float]

    @property
    def best_single(self) -> int:
        return min(range(len(self.single)), key=self.single.__getitem__)

    @property
    def chosen(self) -> list[int]:
        """The candidates with a weight, heaviest first."""
        order = sorted(range(len(self.weights)), key=lambda i: -self.weights[i])
        return [i for i in order if self.weights[i] > 0]


def prediction_loss(pred: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """The score selection minimises: the negative log-likelihood of ``pred`` (class
    probabilities, ``(N, K)``) for classification, the mean squared error of ``pred`` (values,
    ``(N, k)``) for regression."""
    if task == "classification":
        return float(F.nll_loss(pred.clamp_min(1e-12).log(), y))
    return float(F.mse_loss(pred, y.reshape(pred.shape)))


def as_probabilities(outputs: torch.Tensor, task: str) -> torch.Tensor:
    """A model's outputs as what is averaged: softmax of logits (classification) or the values."""
    return outputs.float().softmax(-1) if task == "classification" else outputs.float()


def greedy_selection(preds: Sequence[torch.Tensor], y: torch.Tensor, *, task: str, rounds: int = 25,
                     loss: str = "nll") -> Selection:
    """Caruana's greedy selection with replacement over ``preds`` (one ``(N, K)`` tensor of class
    probabilities, or ``(N, k)`` values, per candidate, on the same rows as ``y``).

    ``loss``: ``"nll"`` (log loss for classification; squared error for regression) or
    ``"error"`` (the error rate; classification only). Ties go to the earlier candidate, so
    pass the candidates best first.
    """
    if task not in ("classification", "regression"):
        raise ConfigError(f"invalid task: got {task!r}; allowed: classification, regression")
    if not preds:
        raise ConfigError("greedy_selection needs at least one candidate's predictions; got none")
    rounds = check_int("rounds", rounds, low=1)
    if loss not in ("nll", "error") or (loss == "error" and task != "classification"):
        raise ConfigError(f"invalid loss: got {loss!r}; allowed: 'nll'" + (", 'error'" if task == "classification" else ""))
    shape = tuple(preds[0].shape)
    for i, p in enumerate(preds):
        if tuple(p.shape) != shape or len(p) != len(y):
            raise ConfigError(f"candidate {i}'s predictions have shape {tuple(p.shape)}; allowed: {shape} "
                              f"(one row per label, {len(y)} rows)")
    stack = torch.stack([p.double() for p in preds])  # (M, N, K)

    def score(mix: torch.Tensor) -> float:
        if loss == "error":
            return float((mix.argmax(-1) != y).double().mean())
        return prediction_loss(mix, y, task)

    single = [score(p) for p in stack]
    counts = [0] * len(preds)
    total = torch.zeros_like(stack[0])
    path = []
    for r in range(rounds):
        trials = [score((total + stack[i]) / (r + 1)) for i in range(len(preds))]
        pick = min(range(len(preds)), key=trials.__getitem__)
        counts[pick] += 1
        total += stack[pick]
        path.append(trials[pick])
    return Selection(weights=[c / rounds for c in counts], path=path, single=single)
