"""A small Gaussian process for ``AutoSampler``, with a bounded cost.

Inputs live in the unit cube (log parameters already on a log scale, integers at the middle of
their slices, categoricals one-hot: ``_encode.py``); outputs are minimised. The model:

* **output warping** (``warp``): a robust scale whose worse half is compressed by a log, then
  Yeo-Johnson (scipy's maximum-likelihood lambda) when still skewed, so a few very bad trials
  (diverged runs, an ellipsoid's corners) do not flatten the model where the good ones are;
* **kernel**: Matérn 5/2 with one length scale per input (automatic relevance), an amplitude
  and a white-noise term, fitted by maximum a posteriori (a weak log-normal prior on each
  length scale) with L-BFGS-B from the previous fit's values, on at most ``FIT_POINTS`` trials
  (the best half and the most recent half), then conditioned on all of them (``fit=False``
  keeps given values: ``AutoSampler`` refits every fifth trial past 100);
* **acquisition**: log expected improvement over the best *posterior mean* among the observed
  points (not the best observed value, which noise makes a lucky draw), maximised over seeded
  random candidates, candidates around the best points, and a second round around the best
  candidates.

scikit-learn's ``GaussianProcessRegressor`` fits the same kernel, but its generic gradient
costs 80-300 ms per fit at 100-200 trials on 2 cores (measured); this one costs a few ms, which
keeps the sampler within its 50 ms per trial at 500 trials.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.special import log_ndtr

__all__ = ["GaussianProcess", "TransferProcess", "propose", "warp"]

SQRT5 = math.sqrt(5.0)
FIT_POINTS = 80  # trials the hyperparameters are fitted on (all of them condition the model)
LOG_LS_PRIOR = (math.log(0.5), 1.5)  # log-normal prior of each length scale (mean, sd)
BOUNDS_LOG_LS = (math.log(0.01), math.log(20.0))
BOUNDS_LOG_AMP = (math.log(0.05), math.log(20.0))
BOUNDS_LOG_NOISE = (math.log(1e-6), math.log(1.0))


def warp(y: np.ndarray) -> np.ndarray:
    """Values on a robust scale (lower is better throughout): centred on their median, divided
    by their interquartile range, the worse half taken through ``log1p`` (a diverged trial stays
    the worst without squeezing the good ones together), Yeo-Johnson transformed when still
    skewed, then standardised."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)) or float(y.std()) <= 0:
        return np.zeros_like(y)
    q1, med, q3 = np.quantile(y, [0.25, 0.5, 0.75])
    scale = float(q3 - q1) or float(y.std())
    z = (y - med) / scale
    z = np.where(z > 0, np.log1p(np.maximum(z, 0.0)), z)
    if abs(float(stats.skew(z))) > 0.5:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            t, _ = stats.yeojohnson(z)
        if np.all(np.isfinite(t)) and t.std() > 0:
            z = t
    return (z - z.mean()) / z.std()


def _matern(x1: np.ndarray, x2: np.ndarray, ls: np.ndarray) -> np.ndarray:
    a, b = x1 / ls, x2 / ls  # squared distances by one matrix product, not an n x m x d array
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    r = np.sqrt(np.maximum(sq, 1e-30))
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-SQRT5 * r)


class GaussianProcess:
    """A Matérn 5/2 Gaussian process on ``x`` (n x d, unit cube) and ``z`` (warped values).

    ``theta`` (log length scales, log amplitude, log noise) starts the fit when given (the
    previous trial's fit); ``fit=False`` keeps it as it is (conditioning on pending points)."""

    def __init__(self, x: np.ndarray, z: np.ndarray, theta: np.ndarray | None = None, *,
                 fit: bool = True, max_iter: int = 30, fit_points: int = FIT_POINTS) -> None:
        self.x, self.z = np.asarray(x, dtype=float), np.asarray(z, dtype=float)
        n, d = self.x.shape
        default = np.array([LOG_LS_PRIOR[0]] * d + [0.0, math.log(1e-3)])
        if theta is None or len(theta) != d + 2:
            theta = default
        if fit and n >= 3:
            idx = _fit_subset(self.z, fit_points)
            xs, zs = self.x[idx], self.z[idx]
            starts = [np.clip(theta, *self._bounds(d).T), default]
            best = min(starts, key=lambda t: self._nlp(t, xs, zs, grad=False))
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = minimize(self._nlp, best, args=(xs, zs), jac=True, method="L-BFGS-B",
                               bounds=self._bounds(d), options={"maxiter": max_iter})
            theta = res.x if np.all(np.isfinite(res.x)) and res.fun <= self._nlp(best, xs, zs, grad=False) else best
        self.theta = np.asarray(theta, dtype=float)
        ls, amp, noise = self._unpack(self.theta)
        k = amp * _matern(self.x, self.x, ls) + (noise * amp + 1e-8) * np.eye(n)
        self._chol = cholesky(k, lower=True)
        self._alpha = cho_solve((self._chol, True), self.z)

    @staticmethod
    def _bounds(d: int) -> np.ndarray:
        return np.array([BOUNDS_LOG_LS] * d + [BOUNDS_LOG_AMP, BOUNDS_LOG_NOISE])

    @staticmethod
    def _unpack(theta: np.ndarray) -> tuple[np.ndarray, float, float]:
        return np.exp(theta[:-2]), float(np.exp(theta[-2])), float(np.exp(theta[-1]))

    def _nlp(self, theta: np.ndarray, x: np.ndarray, z: np.ndarray, grad: bool = True):
        """Negative log posterior of ``theta`` (marginal likelihood and the length-scale prior),
        with its gradient when ``grad``."""
        n = len(z)
        ls, amp, noise = self._unpack(theta)
        diff = (x[:, None, :] - x[None, :, :]) / ls
        sq = diff * diff
        r = np.sqrt(np.maximum(sq.sum(-1), 1e-30))
        e = np.exp(-SQRT5 * r)
        base = (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e
        k = amp * base + (noise * amp + 1e-8) * np.eye(n)
        try:
            chol = cholesky(k, lower=True)
        except np.linalg.LinAlgError:
            return (1e10, np.zeros_like(theta)) if grad else 1e10
        alpha = cho_solve((chol, True), z)
        mu, sd = LOG_LS_PRIOR
        value = (0.5 * z @ alpha + np.log(np.diag(chol)).sum() + 0.5 * n * math.log(2 * math.pi)
                 + 0.5 * np.sum(((theta[:-2] - mu) / sd) ** 2))
        if not grad:
            return float(value)
        kinv = cho_solve((chol, True), np.eye(n))
        w = np.outer(alpha, alpha) - kinv  # d(log likelihood) = 0.5 tr(w dK)
        g_ls = -0.5 * np.einsum("ij,ijk->k", w, (amp * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e)[:, :, None] * sq)
        g_ls += (theta[:-2] - mu) / sd ** 2
        g_amp = -0.5 * np.sum(w * (k - 1e-8 * np.eye(n)))
        g_noise = -0.5 * np.trace(w) * noise * amp
        return float(value), np.concatenate([g_ls, [g_amp, g_noise]])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (of the latent function) at ``x``."""
        ls, amp, _ = self._unpack(self.theta)
        ks = amp * _matern(np.asarray(x, dtype=float), self.x, ls)
        mean = ks @ self._alpha
        v = solve_triangular(self._chol, ks.T, lower=True)
        var = np.maximum(amp - np.einsum("ij,ij->j", v, v), 1e-12)
        return mean, np.sqrt(var)

    def with_points(self, x: np.ndarray, z: np.ndarray) -> GaussianProcess:
        """The same hyperparameters conditioned on extra points (the constant liar's)."""
        return GaussianProcess(np.vstack([self.x, x]), np.concatenate([self.z, z]), self.theta, fit=False)


class TransferProcess:
    """A Gaussian process on what a related study's model does not explain (a warm start that
    learns from every earlier trial, not only the best few).

    ``source`` is a process fitted on the related study's trials (warped the same way). This
    study's warped values ``z`` are modelled as ``beta * source_mean(x) + residual(x)``, the
    residual a process of its own; ``beta`` is the least-squares weight of the source's mean
    on this study's values, shrunk towards 1 while there are few of them (``SHRINK`` pseudo
    points) and kept in [0, 1.5]: a related study that misleads loses its weight as the
    study's own trials come in. Used like ``GaussianProcess`` (``x``, ``z``, ``theta``,
    ``predict``, ``with_points``)."""

    SHRINK = 3.0

    def __init__(self, source: GaussianProcess, x: np.ndarray, z: np.ndarray, theta: np.ndarray | None = None,
                 *, fit: bool = True, beta: float | None = None) -> None:
        self.source, self.x, self.z = source, np.asarray(x, dtype=float), np.asarray(z, dtype=float)
        m = source.predict(self.x)[0]
        if beta is None:
            beta = float(np.clip((self.z @ m + self.SHRINK) / (m @ m + self.SHRINK), 0.0, 1.5))
        self.beta = beta
        self.residual = GaussianProcess(self.x, self.z - beta * m, theta, fit=fit)
        self.theta = self.residual.theta

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, sd = self.residual.predict(x)
        return mean + self.beta * self.source.predict(x)[0], sd

    def with_points(self, x: np.ndarray, z: np.ndarray) -> TransferProcess:
        return TransferProcess(self.source, np.vstack([self.x, x]), np.concatenate([self.z, z]), self.theta,
                               fit=False, beta=self.beta)


def _fit_subset(z: np.ndarray, size: int) -> np.ndarray:
    """The best half and the most recent half of at most ``size`` points (all when fewer)."""
    n = len(z)
    if n <= size:
        return np.arange(n)
    best = np.argsort(z, kind="stable")[: size // 2]
    recent = [i for i in range(n - 1, -1, -1) if i not in set(best)][: size - len(best)]
    return np.sort(np.concatenate([best, np.array(recent, dtype=int)]))


def log_ei(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log expected improvement below ``best``, stable far into the tail."""
    u = (best - mean) / sd
    # log(u Phi(u) + phi(u)): direct where it is safe, the asymptote phi(u) / u^2 far left
    with np.errstate(all="ignore"):
        direct = np.log(np.maximum(u * np.exp(log_ndtr(u)) + np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi), 1e-300))
        tail = -0.5 * u * u - 0.5 * math.log(2 * math.pi) - 2.0 * np.log(np.maximum(-u, 1e-12))
    return np.where(u > -6.0, direct, tail) + np.log(sd)


def propose(gp: GaussianProcess, rng: np.random.Generator, n_random: int = 1000, *,
            unit: np.ndarray | None = None, encode: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The candidate with the highest log expected improvement, a point in the unit cube.

    Candidates are drawn in the unit cube of the parameters; ``encode`` maps them to the
    process's inputs (one-hot categoricals: ``Encoding.features``) and ``unit`` holds the
    observed points' unit coordinates (row by row with ``gp.x``); without them the unit cube is
    the process's own input space."""
    encode = encode or (lambda u: u)
    unit = gp.x if unit is None else unit
    d = unit.shape[1]
    mean_obs, _ = gp.predict(gp.x)
    best = float(mean_obs.min())
    top = unit[np.argsort(mean_obs, kind="stable")[:5]]
    near = [np.clip(c + s * rng.standard_normal((60, d)), 0.0, 1.0) for c in top for s in (0.2, 0.05, 0.01)]
    cands = np.vstack([rng.random((n_random, d)), *near])
    score = log_ei(*gp.predict(encode(cands)), best)
    lead = cands[np.argsort(-score, kind="stable")[:3]]
    finer = np.vstack([np.clip(c + s * rng.standard_normal((50, d)), 0.0, 1.0) for c in lead for s in (0.02, 0.004)])
    cands = np.vstack([lead, finer])
    score = log_ei(*gp.predict(encode(cands)), best)
    return cands[int(np.argmax(score))]
