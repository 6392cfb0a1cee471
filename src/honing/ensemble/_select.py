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
from typing import Any
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
                     loss: str = "nll", init: int = 1, bags: int = 1, seed: int = 0) -> Selection:
    """Caruana's greedy selection with replacement over ``preds`` (one ``(N, K)`` tensor of class
    probabilities, or ``(N, k)`` values, per candidate, on the same rows as ``y``).

    ``loss``: ``"nll"`` (log loss for classification; squared error for regression) or
    ``"error"`` (the error rate; classification only). ``rounds``: additions in all. ``init``:
    sorted initialisation, the best ``init`` candidates enter once each before the greedy ones. ``bags``: bagged selection, the
    weights averaged over ``bags`` selections, each among a random half of the candidates
    (Caruana et al. 2006, "Getting the most out of ensemble selection": both keep the selection
    from overfitting a small hill-climbing set). Ties go to the earlier candidate, so pass the
    candidates best first. ``path`` is the first bag's.
    """
    if task not in ("classification", "regression"):
        raise ConfigError(f"invalid task: got {task!r}; allowed: classification, regression")
    if not preds:
        raise ConfigError("greedy_selection needs at least one candidate's predictions; got none")
    rounds = check_int("rounds", rounds, low=1)
    init = check_int("init", init, low=1)
    bags = check_int("bags", bags, low=1)
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
    m = len(preds)
    gen = torch.Generator().manual_seed(seed)
    weights = [0.0] * m
    first_path: list[float] = []
    for b in range(bags):
        pool = list(range(m)) if bags == 1 or m < 2 else sorted(
            torch.randperm(m, generator=gen)[: max(1, m // 2)].tolist())
        counts, path = _hill_climb(stack, pool, single, score, rounds=rounds, init=init)
        weights = [w + c / sum(counts) / bags for w, c in zip(weights, counts)]
        if b == 0:
            first_path = path
    return Selection(weights=weights, path=first_path, single=single)


def _hill_climb(stack: torch.Tensor, pool: list[int], single: list[float], score: Any, *, rounds: int,
                init: int) -> tuple[list[int], list[float]]:
    """One selection among ``pool``: the best ``init`` enter first, then greedy additions up to ``rounds`` in all."""
    counts = [0] * len(stack)
    total = torch.zeros_like(stack[0])
    path = []
    for i in sorted(pool, key=lambda j: (single[j], j))[:init]:
        counts[i] += 1
        total += stack[i]
        path.append(score(total / sum(counts)))
    for _ in range(max(0, rounds - sum(counts))):
        n = sum(counts) + 1
        trials = {i: score((total + stack[i]) / n) for i in pool}
        pick = min(pool, key=lambda i: (trials[i], i))
        counts[pick] += 1
        total += stack[pick]
        path.append(trials[pick])
    return counts, path
