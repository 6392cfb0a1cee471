"""The 24 noiseless BBOB functions (Hansen, Finck, Ros and Auger, "Real-Parameter Black-Box
Optimization Benchmarking 2009: Noiseless Functions Definitions", INRIA RR-6829), written from
the definitions in numpy, with optional multiplicative noise as in the noisy testbed.

Instances are our own: ``Bbob(fid, dim, instance)`` draws the optimum ``x_opt``, the rotations
``R`` and ``Q`` and (for f21/f22) the peaks from ``numpy.random.default_rng((fid, dim,
instance))``; they are not COCO's instance numbers. ``f_opt`` is 0, so ``f(x)`` is the regret.
The search domain is ``[-5, 5]^dim``.

    f = Bbob(15, dim=4, instance=1)
    f(np.zeros(4))            # regret at the centre
    f.x_opt                   # where it is 0 (f5, f8/f9, f19, f20, f24: see the definitions)
"""

from __future__ import annotations

import math

import numpy as np

NAMES = {1: "sphere", 2: "ellipsoid-separable", 3: "rastrigin-separable", 4: "bueche-rastrigin", 5: "linear-slope",
         6: "attractive-sector", 7: "step-ellipsoid", 8: "rosenbrock", 9: "rosenbrock-rotated", 10: "ellipsoid",
         11: "discus", 12: "bent-cigar", 13: "sharp-ridge", 14: "different-powers", 15: "rastrigin",
         16: "weierstrass", 17: "schaffers-f7", 18: "schaffers-f7-ill", 19: "griewank-rosenbrock", 20: "schwefel",
         21: "gallagher-101", 22: "gallagher-21", 23: "katsuura", 24: "lunacek-bi-rastrigin"}
NOISE = {"none": 0.0, "moderate": 0.01, "severe": 1.0}  # beta of the Gaussian multiplicative noise


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _lambda(alpha: float, d: int) -> np.ndarray:
    """The diagonal of Lambda^alpha: alpha^(0.5 (i - 1) / (d - 1))."""
    if d == 1:
        return np.ones(1)
    return alpha ** (0.5 * np.arange(d) / (d - 1))


def t_osz(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    xh = np.where(x != 0, np.log(np.abs(np.where(x != 0, x, 1.0))), 0.0)
    c1 = np.where(x > 0, 10.0, 5.5)
    c2 = np.where(x > 0, 7.9, 3.1)
    return np.sign(x) * np.exp(xh + 0.049 * (np.sin(c1 * xh) + np.sin(c2 * xh)))


def t_asy(x: np.ndarray, beta: float) -> np.ndarray:
    d = len(x)
    exp = 1 + beta * (np.arange(d) / max(d - 1, 1)) * np.sqrt(np.maximum(x, 0))
    return np.where(x > 0, np.abs(x) ** exp, x)


def f_pen(x: np.ndarray) -> float:
    return float(np.sum(np.maximum(0.0, np.abs(x) - 5.0) ** 2))


def _powers(d: int, top: float) -> np.ndarray:
    """top^((i - 1) / (d - 1)), the conditioning weights."""
    return top ** (np.arange(d) / max(d - 1, 1))


class Bbob:
    """One BBOB function instance (see the module docstring). ``noise``: none, moderate or
    severe (f * exp(beta N(0, 1)), beta 0.01 or 1; the noise is drawn from ``noise_seed``'s
    stream, one draw per call)."""

    def __init__(self, fid: int, dim: int, instance: int = 1, *, noise: str = "none", noise_seed: int = 0) -> None:
        if fid not in NAMES:
            raise ValueError(f"fid {fid}; allowed: 1-24")
        if dim < 2:
            raise ValueError("dim >= 2")
        self.fid, self.dim, self.instance, self.name = fid, dim, instance, NAMES[fid]
        self.beta = NOISE[noise]
        self._noise = np.random.default_rng((noise_seed, fid, dim, instance, 7))
        rng = np.random.default_rng((fid, dim, instance))
        d = dim
        self.x_opt = rng.uniform(-4, 4, d)
        self.R, self.Q = _rotation(rng, d), _rotation(rng, d)
        self.signs = np.where(rng.random(d) < 0.5, -1.0, 1.0)
        if fid == 4:  # odd coordinates (1-based) of the optimum are positive
            self.x_opt[::2] = np.abs(self.x_opt[::2])
        if fid == 5:
            self.x_opt = 5.0 * self.signs
        if fid in (8, 9, 19):
            self.x_opt = rng.uniform(-3, 3, d)
        if fid == 9 or fid == 19:
            scale = max(1.0, math.sqrt(d) / 8)
            self.x_opt = np.linalg.solve(self.R, (np.ones(d) - 0.5) / scale)  # z = 1 at x_opt
        if fid == 20:
            self.x_opt = 4.2096874633 / 2 * self.signs
        if fid == 24:
            self.x_opt = 2.5 / 2 * self.signs
        if fid in (21, 22):
            self._gallagher(rng, 101 if fid == 21 else 21)

    def _gallagher(self, rng: np.random.Generator, peaks: int) -> None:
        d = self.dim
        if peaks == 101:
            alphas = 1000.0 ** (2 * rng.permutation(peaks - 1) / (peaks - 2))
            first, low, high, low1 = 1000.0, -5.0, 5.0, -4.0
        else:
            alphas = 1000.0 ** (2 * rng.permutation(peaks - 1) / (peaks - 2))
            first, low, high, low1 = 1000.0**2, -4.9, 4.9, -3.92
        self.alphas = np.concatenate([[first], alphas])
        self.weights = np.concatenate([[10.0], 1.1 + 8 * np.arange(peaks - 1) / (peaks - 2)])
        self.peaks_y = rng.uniform(low, high, (peaks, d))
        self.peaks_y[0] = rng.uniform(low1, -low1, d)
        self.x_opt = self.peaks_y[0].copy()
        # C_i = Lambda^alpha_i / alpha_i^(1/4), its diagonal in a random order per peak
        self.peaks_c = np.stack([rng.permutation(_lambda(a, d) ** 2) / a**0.25 for a in self.alphas])

    def __call__(self, x: np.ndarray) -> float:
        value = self.value(np.asarray(x, dtype=np.float64))
        if self.beta:
            value = value * math.exp(self.beta * self._noise.standard_normal())
        return float(value)

    def value(self, x: np.ndarray) -> float:  # noqa: C901 - one branch per function, as the paper
        d, fid = self.dim, self.fid
        R, Q, xo = self.R, self.Q, self.x_opt
        if fid == 1:
            return float(np.sum((x - xo) ** 2))
        if fid == 2:
            z = t_osz(x - xo)
            return float(np.sum(_powers(d, 1e6) * z**2))
        if fid == 3:
            z = _lambda(10, d) * t_asy(t_osz(x - xo), 0.2)
            return float(10 * (d - np.sum(np.cos(2 * np.pi * z))) + np.sum(z**2))
        if fid == 4:
            z = t_osz(x - xo)
            s = _powers(d, math.sqrt(10))
            odd = np.arange(d) % 2 == 0
            z = np.where((z > 0) & odd, 10 * s * z, s * z)
            return float(10 * (d - np.sum(np.cos(2 * np.pi * z))) + np.sum(z**2) + 100 * f_pen(x))
        if fid == 5:
            z = np.where(xo * x < 25, x, xo)
            s = np.sign(xo) * _powers(d, 10)
            return float(np.sum(5 * np.abs(s) - s * z))
        if fid == 6:
            z = Q @ (_lambda(10, d) * (R @ (x - xo)))
            s = np.where(z * xo > 0, 100.0, 1.0)
            return float(t_osz(np.array([np.sum((s * z) ** 2)]))[0] ** 0.9)
        if fid == 7:
            zh = _lambda(10, d) * (R @ (x - xo))
            zt = np.where(np.abs(zh) > 0.5, np.floor(0.5 + zh), np.floor(0.5 + 10 * zh) / 10)
            z = Q @ zt
            return float(0.1 * max(abs(zh[0]) / 1e4, np.sum(_powers(d, 100) * z**2)) + f_pen(x))
        if fid in (8, 9):
            scale = max(1.0, math.sqrt(d) / 8)
            z = scale * (x - xo) + 1 if fid == 8 else scale * (R @ x) + 0.5
            return float(np.sum(100 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1) ** 2))
        if fid == 10:
            z = t_osz(R @ (x - xo))
            return float(np.sum(_powers(d, 1e6) * z**2))
        if fid == 11:
            z = t_osz(R @ (x - xo))
            return float(1e6 * z[0] ** 2 + np.sum(z[1:] ** 2))
        if fid == 12:
            z = R @ t_asy(R @ (x - xo), 0.5)
            return float(z[0] ** 2 + 1e6 * np.sum(z[1:] ** 2))
        if fid == 13:
            z = Q @ (_lambda(10, d) * (R @ (x - xo)))
            return float(z[0] ** 2 + 100 * math.sqrt(np.sum(z[1:] ** 2)))
        if fid == 14:
            z = R @ (x - xo)
            return float(math.sqrt(np.sum(np.abs(z) ** (2 + 4 * np.arange(d) / (d - 1)))))
        if fid == 15:
            z = R @ (_lambda(10, d) * (Q @ t_asy(t_osz(R @ (x - xo)), 0.2)))
            return float(10 * (d - np.sum(np.cos(2 * np.pi * z))) + np.sum(z**2))
        if fid == 16:
            z = R @ (_lambda(0.01, d) * (Q @ t_osz(R @ (x - xo))))
            k = np.arange(12)
            f0 = np.sum(0.5**k * np.cos(np.pi * 3.0**k))
            inner = np.sum(0.5**k[None, :] * np.cos(2 * np.pi * 3.0**k[None, :] * (z[:, None] + 0.5)), axis=1)
            return float(10 * (np.mean(inner) - f0) ** 3 + 10 / d * f_pen(x))
        if fid in (17, 18):
            cond = 10 if fid == 17 else 1000
            z = _lambda(cond, d) * (Q @ t_asy(R @ (x - xo), 0.5))
            s = np.sqrt(z[:-1] ** 2 + z[1:] ** 2)
            return float((np.mean(np.sqrt(s) + np.sqrt(s) * np.sin(50 * s**0.2) ** 2)) ** 2 + 10 * f_pen(x))
        if fid == 19:
            z = max(1.0, math.sqrt(d) / 8) * (R @ x) + 0.5
            s = 100 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1) ** 2
            return float(10 / (d - 1) * np.sum(s / 4000 - np.cos(s)) + 10)
        if fid == 20:
            xh = 2 * self.signs * x
            zh = xh.copy()
            zh[1:] = xh[1:] + 0.25 * (xh[:-1] - 2 * np.abs(xo[:-1]))
            z = 100 * (_lambda(10, d) * (zh - 2 * np.abs(xo)) + 2 * np.abs(xo))
            return float(-np.sum(z * np.sin(np.sqrt(np.abs(z)))) / (100 * d) + 4.189828872724339
                         + 100 * f_pen(z / 100))
        if fid in (21, 22):
            diff = (R @ (x[None, :] - self.peaks_y).T).T  # (peaks, d)
            g = self.weights * np.exp(-np.sum(self.peaks_c * diff**2, axis=1) / (2 * d))
            return float(t_osz(np.array([10 - g.max()]))[0] ** 2 + f_pen(x))
        if fid == 23:
            z = Q @ (_lambda(100, d) * (R @ (x - xo)))
            j = 2.0 ** np.arange(1, 33)
            terms = np.sum(np.abs(j[None, :] * z[:, None] - np.round(j[None, :] * z[:, None])) / j[None, :], axis=1)
            prod = np.prod((1 + np.arange(1, d + 1) * terms) ** (10 / d**1.2))
            return float(10 / d**2 * prod - 10 / d**2 + f_pen(x))
        if fid == 24:
            mu0, dd = 2.5, 1.0
            s = 1 - 1 / (2 * math.sqrt(d + 20) - 8.2)
            mu1 = -math.sqrt((mu0**2 - dd) / s)
            xh = 2 * np.sign(xo) * x
            z = Q @ (_lambda(100, d) * (R @ (xh - mu0)))
            return float(min(np.sum((xh - mu0) ** 2), dd * d + s * np.sum((xh - mu1) ** 2))
                         + 10 * (d - np.sum(np.cos(2 * np.pi * z))) + 1e4 * f_pen(x))
        raise AssertionError(fid)
