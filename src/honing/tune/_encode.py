"""How ``AutoSampler``'s Gaussian process sees an Optuna search space.

Every parameter has a *unit coordinate* in [0, 1): its quantile in its range (log scale for log
ranges; the middle of its slice for integers and stepped values), or for a categorical the
slice of its choice. The process's inputs (*features*) are the numeric coordinates and one
one-hot vector per categorical, each feature with a length scale of its own.

Conditional spaces (a parameter some trials lack) are modelled when every such parameter follows
one categorical that all trials have: it is present exactly when that categorical takes one of
some values (an optimizer's ``momentum`` when ``optimizer`` is ``sgd``; xgboost's ``eta`` unless
the booster is ``gblinear``). Where it is absent, its feature is the middle of its range (a
number) or all zeros (a categorical), in observed trials and in candidates alike, so the model
is not misled by coordinates that change nothing. A space whose conditions follow anything else
(a number's value, a nested choice) is left to the TPE model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from honing._core import ConfigError
from honing.tune._compat import distribution_contains

__all__ = ["Encoding", "MAX_FEATURES", "contains", "from_unit", "to_unit"]

MAX_FEATURES = 64  # wider spaces (many categorical choices) are left to the TPE model


class Encoding:
    """The parameters of ``trials`` as the Gaussian process's inputs (``Encoding.of``)."""

    def __init__(self, space: Sequence[tuple[str, BaseDistribution]],
                 rules: Mapping[str, tuple[str, frozenset]]) -> None:
        self.space = list(space)  # (name, distribution), sorted by name
        self.names = [n for n, _ in self.space]
        self.rules = dict(rules)  # conditional name -> (categorical parent, parent values where present)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.n_features = sum(len(d.choices) if isinstance(d, CategoricalDistribution) else 1 for _, d in self.space)

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial]) -> Encoding | None:
        """The encoding of the parameters in ``trials``, or None when the model cannot take them:
        one name with two distributions, a condition that follows no categorical, more than
        ``MAX_FEATURES`` features."""
        dists: dict[str, BaseDistribution] = {}
        for t in trials:
            for name, dist in t.distributions.items():
                if dists.setdefault(name, dist) != dist:
                    return None
        names = sorted(dists)
        always = [n for n in names if all(n in t.params for t in trials)]
        parents = [n for n in always if isinstance(dists[n], CategoricalDistribution)]
        rules = {}
        for name in names:
            if name in always:
                continue
            for parent in parents:
                on = frozenset(t.params[parent] for t in trials if name in t.params)
                if all((name in t.params) == (t.params[parent] in on) for t in trials):
                    rules[name] = (parent, on)
                    break
            else:
                return None
        encoding = cls([(n, dists[n]) for n in names], rules)
        return encoding if encoding.n_features <= MAX_FEATURES else None

    def unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """The unit coordinates of a trial's values (0.5 for a parameter it lacks)."""
        return np.array([to_unit(d, params[n]) if n in params else 0.5 for n, d in self.space])

    def active(self, u: np.ndarray) -> np.ndarray:
        """Which parameters each row of unit coordinates ``u`` (m x d) uses, by the rules."""
        u = np.atleast_2d(u)
        mask = np.ones(u.shape, dtype=bool)
        for name, (parent, on) in self.rules.items():
            dist = self.space[self._index[parent]][1]
            choices = np.array([c in on for c in dist.choices])
            mask[:, self._index[name]] = choices[_choice_index(u[:, self._index[parent]], len(dist.choices))]
        return mask

    def features(self, u: np.ndarray) -> np.ndarray:
        """The process's inputs for rows of unit coordinates (m x d -> m x ``n_features``)."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        active = self.active(u)
        columns = []
        for j, (_, dist) in enumerate(self.space):
            if isinstance(dist, CategoricalDistribution):
                k = len(dist.choices)
                columns.append(np.eye(k)[_choice_index(u[:, j], k)] * active[:, j:j + 1])
            else:
                columns.append(np.where(active[:, j], u[:, j], 0.5)[:, None])
        return np.hstack(columns)

    def point(self, u: np.ndarray) -> dict[str, Any]:
        """The values at unit coordinates ``u`` (one row), the parameters the rules leave out omitted."""
        active = self.active(u)[0]
        return {n: from_unit(d, float(v)) for (n, d), v, on in zip(self.space, u, active) if on}


def _choice_index(u: np.ndarray, k: int) -> np.ndarray:
    return np.clip((np.asarray(u) * k).astype(int), 0, k - 1)


def _int_log_bounds(lo: float, hi: float) -> tuple[float, float]:
    """The log range of an integer log distribution: integer k covers [log(k - 0.5), log(k + 0.5))."""
    return (math.log(lo - 0.5) if lo > 0.5 else math.log(lo)), math.log(hi + 0.5)


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one of ``dist``'s values (False for a value of the wrong type)."""
    try:
        return distribution_contains(dist, dist.to_internal_repr(value))
    except (TypeError, ValueError):
        return False


def to_unit(dist: BaseDistribution, value: Any) -> float:
    """The inverse of ``from_unit``: where ``value`` lies in [0, 1] (the middle of its slice for
    integers, stepped values and choices, which ``from_unit`` maps back to it)."""
    if isinstance(dist, CategoricalDistribution):
        return (dist.choices.index(value) + 0.5) / len(dist.choices)
    lo, hi = float(dist.low), float(dist.high)
    if hi <= lo:
        return 0.5
    if isinstance(dist, IntDistribution) and dist.log:
        a, b = _int_log_bounds(lo, hi)
        return (math.log(value) - a) / (b - a)
    if dist.log:
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    if dist.step is not None:
        steps = int(round((hi - lo) / dist.step))
        return (round((float(value) - lo) / dist.step) + 0.5) / (steps + 1)
    return (float(value) - lo) / (hi - lo)


def from_unit(dist: BaseDistribution, u: float) -> Any:
    """The value at quantile ``u`` in [0, 1) of ``dist``'s range (log scale for log ranges;
    the grid for stepped ones; a choice for categorical ones)."""
    u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(u * len(dist.choices))]
    if isinstance(dist, FloatDistribution):
        lo, hi = dist.low, dist.high
        if dist.log:
            return float(min(hi, max(lo, math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))))
        if dist.step is not None:
            steps = int(round((hi - lo) / dist.step))
            return float(min(hi, lo + min(int(u * (steps + 1)), steps) * dist.step))
        return float(lo + u * (hi - lo))
    if isinstance(dist, IntDistribution):
        lo, hi = dist.low, dist.high
        if dist.log:
            a, b = _int_log_bounds(lo, hi)
            return int(min(hi, max(lo, round(math.exp(a + u * (b - a))))))
        steps = (hi - lo) // dist.step
        return int(lo + min(int(u * (steps + 1)), steps) * dist.step)
    raise ConfigError(f"AutoSampler cannot sample a {type(dist).__name__}")
