"""``AutoSampler``: honing's search strategy as an Optuna sampler usable on any study.

```python
import optuna
from honing.tune import AutoSampler

study = optuna.create_study(sampler=AutoSampler(seed=0, start=[{"lr": 1e-3, "layers": 2}]))
study.optimize(objective, n_trials=50)
```

Every trial is routed by its number, so the route is the same in every worker process and a
re-run with the same seed proposes the same points:

1. **start points** (``start``: the recipe's own values, the search centre; then any others a
   caller knows to be good), one per trial, values outside a distribution left to step 2;
2. **a Latin hypercube** over the first ``n_startup`` trials: for every parameter, each of
   ``n_startup`` equal slices of its range (in log space for log parameters; choices for
   categorical ones) is used once, in a seeded order of its own, so the start covers every
   range evenly whatever the number of parameters and however they are nested (conditional
   parameters take their slices when they appear);
3. then, by a seeded draw per trial: a ``random_share`` (0.05) drawn at random, so the search
   never falls far behind random search when its model misleads it; a ``local_share`` (0.25)
   of **local steps** from the best trial so far (a Gaussian step per number in its unit range,
   its width set by the one-fifth rule over the earlier local steps: TPE alone is slow to
   close in on an optimum it has found); the rest from **the model**: a Gaussian process
   (``_gp.py``; numbers, categoricals one-hot, conditions that follow a categorical:
   ``_encode.py``) up to ``gp_trials`` trials, else multivariate TPE over conditional groups,
   both with the constant liar (a running trial counts as a bad result, so parallel workers do
   not propose the same point).

Every random draw is seeded by (seed, trial number, parameter name): two worker processes with
pickled copies of one sampler never draw the same point for different trials.
"""

from __future__ import annotations

import math
import threading
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from honing._core import ConfigError, check_int, check_number
from honing.tune._compat import seed_sampler
from honing.tune._encode import Encoding, contains, from_unit, to_unit
from honing.tune._gp import GaussianProcess, TransferProcess, propose, warp

__all__ = ["AutoSampler", "ROUTES"]

ROUTES = ("start", "lhs", "prior", "random", "local", "model")
GP_TRIALS = 200  # the Gaussian process models a study up to this many finished trials
REFIT_AFTER = 100  # past this many trials in the process, its hyperparameters are refitted every ``refit_every``
N_STARTUP = 7  # start-up trials by default (chosen over 5, 6, 8 and 10 in bench/README.md)


def _key(*parts: Any) -> list[int]:
    """A numpy seed sequence entropy from ints and strings (stable across processes and runs)."""
    return [p if isinstance(p, int) and p >= 0 else zlib.crc32(str(p).encode()) for p in parts]


class AutoSampler(BaseSampler):
    """Start points, a Latin hypercube, then a Gaussian process or TPE, local steps and random draws.

    Args:
        seed: seeds every draw (None: a random seed, fixed for the sampler's life).
        start: parameter dicts tried first, in order (e.g. the recipe's own values).
        n_startup: trials before the model takes over (start points included); default 7,
            or a third of ``n_trials`` when that is given and smaller (at least 2).
        n_trials: the study's budget when known (sizes ``n_startup``).
        random_share: share of the trials after the start-up drawn at random (0 to 0.5).
        local_share: share of them that step from the best trial so far (0 to 0.9; default 0.25,
            measured in bench/README.md).
        constant_liar: count running trials as bad results in the model (parallel workers).
        priors: expected best values by parameter name (a recipe's ``prior:``): the first
            trial takes them; after the start-up, trial ``n`` draws around them with
            probability ``0.5 * w / (w + n - n_startup)``, ``w = prior_weight`` (piBO's idea:
            the prior's weight fades as the study's own data grows).
        refit_every: past 100 trials in the Gaussian process, its hyperparameters (length scales,
            amplitude, noise) are refitted every this many trials, and in between kept while
            the process is conditioned on every trial (default 5; 1 refits every trial). The
            fit is most of the sampler's cost there; its values change little from one trial
            to the next.
        history: a related earlier study's finished trials, ``[{"params": {...}, "value": v}]``
            (the same objective direction; e.g. ``ExperienceStore.history``): the Gaussian
            process models this study's values as a weighted copy of that study's model plus a
            residual (``TransferProcess``), the weight refitted as this study's trials come in.
    """

    def __init__(self, seed: int | None = None, *, start: Sequence[Mapping[str, Any]] | None = None,
                 n_startup: int | None = None, n_trials: int | None = None, random_share: float = 0.05,
                 local_share: float = 0.25, constant_liar: bool = True,
                 priors: Mapping[str, Any] | None = None, prior_weight: float = 10.0,
                 gp_trials: int = GP_TRIALS, history: Sequence[Mapping[str, Any]] | None = None,
                 start_source: str = "start", refit_every: int = 5) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = check_int("seed", seed, low=0)
        if n_trials is not None:
            check_int("n_trials", n_trials, low=1)
        if n_startup is None:
            n_startup = N_STARTUP if n_trials is None else max(2, min(N_STARTUP, n_trials // 3))
        self.n_startup = check_int("n_startup", n_startup, low=1)
        self.random_share = check_number("random_share", random_share, low=0, high=0.5)
        self.local_share = check_number("local_share", local_share, low=0, high=0.9)
        if self.random_share + self.local_share > 0.95:
            raise ConfigError(f"invalid shares: random_share {random_share} + local_share {local_share} leave the "
                              "model no trials; allowed: a sum <= 0.95")
        self.gp_trials = check_int("gp_trials", gp_trials, low=0)
        self.refit_every = check_int("refit_every", refit_every, low=1)
        self.history: list[dict[str, Any]] = []
        self._source: tuple[Any, GaussianProcess | None] | None = None  # the related study's process
        self.set_history(history or [])
        self._gp: tuple[Any, GaussianProcess] | None = None  # the last fit, by its trials
        self._gp_data: tuple[Any, _GpData | None] | None = None  # the last _gp_space, by the trials seen
        self._gp_theta: np.ndarray | None = None  # starts the next fit
        self._local_cache: dict[int, dict[str, Any] | None] = {}
        self._routes: dict[int, str] = {}  # a trial's route, asked once per parameter and per later local step
        # the model's proposals not yet finished, by trial number: worker threads of one process
        # share this sampler, and a proposal's values reach the study only as its trial asks for them
        self._pending: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.start = [dict(p) for p in (start or [])]
        self.start_sources = [str(start_source)] * len(self.start)  # who proposed each start point
        for i, point in enumerate(self.start):
            if not all(isinstance(k, str) for k in point):
                raise ConfigError(f"invalid start[{i}]: got {point!r}; allowed: a mapping of parameter name -> value")
        self.n_startup = max(self.n_startup, len(self.start))
        self.priors: dict[str, Any] = {}
        self.prior_weight = check_number("prior_weight", prior_weight, low=0)
        self.set_priors(priors or {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for multivariate / group / liar
            self._model = TPESampler(seed=self.seed, multivariate=True, group=True, constant_liar=constant_liar,
                                     n_startup_trials=self.n_startup, warn_independent_sampling=False)

    def set_priors(self, priors: Mapping[str, Any]) -> None:
        """Expected best values by parameter name: the first trial takes them, and for a while
        after the start-up a share of trials steps around them (``route``)."""
        if not all(isinstance(k, str) for k in priors):
            raise ConfigError(f"invalid priors: got {dict(priors)!r}; allowed: a mapping of parameter name -> value")
        self.priors = dict(priors)
        self._routes.clear()
        if self.priors:
            first = self.start[0] if self.start else {}
            self.start[:1] = [{**first, **self.priors}]
            self.n_startup = max(self.n_startup, len(self.start))

    def set_history(self, history: Sequence[Mapping[str, Any]]) -> None:
        """A related study's trials (``[{"params": {...}, "value": v}]``, the same objective's
        direction): the Gaussian process learns from them too (``TransferProcess``)."""
        self.history, self._source, self._gp = _check_history(history), None, None

    def add_start(self, points: Sequence[Mapping[str, Any]], *, source: str = "start") -> None:
        """Append start points (tried after those already given, before the hypercube's own);
        ``source`` names who proposed them (``proposed_by``: "recipe", "warm start", ...)."""
        self.start.extend(dict(p) for p in points)
        self.start_sources.extend([str(source)] * len(points))
        self.n_startup = max(self.n_startup, len(self.start))
        self._routes.clear()

    # -- the route of a trial ------------------------------------------------------------------

    def route(self, number: int) -> str:
        """Where trial ``number``'s values come from: start, lhs, prior, random, local or model."""
        if number not in self._routes:
            self._routes[number] = self._draw_route(number)
        return self._routes[number]

    def proposed_by(self, number: int) -> str:
        """Who proposed trial ``number``'s values: a start point's source ("recipe", "warm
        start", "portfolio", ...) or "sampler: <route>" (lhs, prior, random, local, model)."""
        route = self.route(number)
        if route == "start" and number < len(self.start_sources):
            return self.start_sources[number]
        return f"sampler: {route}"

    def _draw_route(self, number: int) -> str:
        if number < len(self.start):
            return "start"
        if number < self.n_startup:
            return "lhs"
        if self.priors and self.prior_weight:  # piBO-like: the prior's share fades as data comes in
            k = number - self.n_startup
            if self._uniform(number, "prior") < 0.5 * self.prior_weight / (self.prior_weight + k):
                return "prior"
        u = self._uniform(number, "route")
        if u < self.random_share:
            return "random"
        if u < self.random_share + self.local_share:
            return "local"
        return "model"

    def _uniform(self, *parts: Any) -> float:
        return float(np.random.default_rng(_key(self.seed, *parts)).random())

    # -- Optuna's sampler interface ------------------------------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self.route(trial.number) != "model":
            return {}
        data = self._gp_space(study, trial.number)
        if data is not None:
            return dict(data.encoding.space)
        return self._model.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space or self.route(trial.number) != "model":
            return {}
        data = self._gp_space(study, trial.number)
        if data is not None and dict(data.encoding.space) == search_space:
            return self._gp_point(study, trial.number, data)
        return self._model.sample_relative(study, trial, search_space)

    # -- the Gaussian process (single objective, small budgets) -----------------------------------

    def _gp_space(self, study: Study, number: int) -> _GpData | None:
        """What the Gaussian process models at trial ``number``, or None (the TPE model decides):
        several objectives, fewer than 3 or more than ``gp_trials`` trials to learn from, a space
        the process cannot take (``Encoding.of``: conditions that follow no categorical).

        The trials to learn from (BOHB's rule, so stopped trials still teach the model): when
        trials report intermediate values, those at the latest step that at least ``d + 2`` of
        the finished and stopped trials reached (``d`` parameters), every trial that reached it
        by its value there; else the finished trials by their values."""
        if not self.gp_trials or len(study.directions) > 1:
            return None
        seen = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if t.number < number]
        # finished trials do not change: the same ones of the same study, the same answer (asked
        # once for the search space and again for the point)
        key = (study.study_name, id(study), tuple(t.number for t in seen))
        cached = self._gp_data  # one read: another worker thread may replace it meanwhile
        if cached is None or cached[0] != key:
            cached = self._gp_data = (key, self._learn_from(seen))
        return cached[1]

    def _learn_from(self, seen: list[FrozenTrial]) -> _GpData | None:
        if not seen or not seen[0].distributions:
            return None
        encoding = Encoding.of(seen)
        if encoding is None:
            return None
        trials, values = [t for t in seen if t.state == TrialState.COMPLETE], None
        steps: dict[int, int] = {}
        for t in seen:
            for step in t.intermediate_values:
                steps[step] = steps.get(step, 0) + 1
        rung = max((s for s, c in steps.items() if c >= len(encoding.names) + 2), default=None)
        if rung is not None and len([t for t in seen if t.state == TrialState.PRUNED]) > 0:
            trials = [t for t in seen if rung in t.intermediate_values]
            values = [float(t.intermediate_values[rung]) for t in trials]
        else:
            values = [float(t.value) for t in trials]
        if not 3 <= len(trials) <= self.gp_trials:
            return None
        order = sorted(range(len(trials)), key=lambda i: trials[i].number)
        trials = [trials[i] for i in order]
        return _GpData(encoding, trials, [values[i] for i in order],
                       np.array([encoding.unit(t.params) for t in trials]))

    def _fit_gp(self, data: _GpData, sign: float) -> GaussianProcess:
        key = (tuple(t.number for t in data.trials), tuple(data.values))
        if self._gp is not None and self._gp[0] == key:
            return self._gp[1]
        x, z = data.encoding.features(data.unit), warp(sign * np.array(data.values))
        source = self._source_gp(data.encoding, sign)
        # past REFIT_AFTER trials the hyperparameters are refitted every refit_every trials (by
        # the count, so the same trials give the same choice), and kept in between
        fit = (len(x) <= REFIT_AFTER or len(x) % self.refit_every == 0 or self._gp_theta is None
               or len(self._gp_theta) != x.shape[1] + 2)
        gp = (GaussianProcess(x, z, self._gp_theta, fit=fit) if source is None
              else TransferProcess(source, x, z, self._gp_theta, fit=fit))
        self._gp, self._gp_theta = (key, gp), gp.theta
        return gp

    def _source_gp(self, encoding: Encoding, sign: float) -> GaussianProcess | None:
        """The process fitted on ``history`` (the related study's trials whose values lie in this
        study's space), or None without one or with fewer than 3 such trials."""
        key = (tuple((n, repr(d)) for n, d in encoding.space), sign)
        if self._source is None or self._source[0] != key:
            names = set(encoding.names)
            rows = [h for h in self.history
                    if set(h["params"]) <= names and all(contains(d, h["params"][n]) for n, d in encoding.space
                                                         if n in h["params"])]
            gp = None
            if len(rows) >= 3:
                unit = np.array([encoding.unit(h["params"]) for h in rows])
                gp = GaussianProcess(encoding.features(unit), warp(sign * np.array([h["value"] for h in rows])))
            self._source = (key, gp)
        return self._source[1]

    def _gp_point(self, study: Study, number: int, data: _GpData) -> dict[str, Any]:
        """The point of highest expected improvement; running trials (other workers') count as
        the worst result seen, so two workers do not propose the same point. Worker threads
        propose one at a time, each seeing the others' proposals before their trials hold them."""
        with self._lock:
            point = self._propose_point(study, number, data)
            self._pending[number] = point
        return point

    def _propose_point(self, study: Study, number: int, data: _GpData) -> dict[str, Any]:
        enc = data.encoding
        gp = self._fit_gp(data, 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0)
        unit = data.unit
        trials = study.get_trials(deepcopy=False)
        running = {t.number: t.params for t in trials if t.state == TrialState.RUNNING and t.number != number}
        pending = [p for n, p in self._pending.items() if n in running]
        busy = [p for p in running.values() if p and p not in pending] + pending
        if busy:
            u = np.array([enc.unit(p) for p in busy])
            gp, unit = gp.with_points(enc.features(u), np.full(len(busy), float(gp.z.max()))), np.vstack([unit, u])
        # a point already tried (a clipped candidate at a bound, an integer rounded to the same
        # value) is told to the model as the worst result and the proposal redrawn: never a trial
        # spent twice on the same values
        taken = {tuple(p.get(n) for n in enc.names) for p in
                 [*(t.params for t in trials if t.number != number), *pending]}
        rng = np.random.default_rng(_key(self.seed, number, "gp"))
        for _ in range(4):
            u = propose(gp, rng, unit=unit, encode=enc.features)
            point = enc.point(u)
            if tuple(point.get(n) for n in enc.names) not in taken:
                return point
            gp = gp.with_points(enc.features(u), np.array([float(gp.z.max())]))
            unit = np.vstack([unit, u])
        return enc.point(rng.random(len(enc.names)))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        route = self.route(trial.number)
        if route == "start":
            value = self.start[trial.number].get(param_name)
            if value is not None and contains(param_distribution, value):
                return value
        if route in ("start", "lhs"):
            return self._latin(trial.number, param_name, param_distribution)
        if route == "random":
            return from_unit(param_distribution, self._uniform(trial.number, param_name))
        if route == "prior" and param_name in self.priors and contains(param_distribution, self.priors[param_name]):
            return self._around(trial.number, param_name, param_distribution, self.priors[param_name])
        if route == "local":
            point = self._local_point(study, trial)
            if point is not None and param_name in point and contains(param_distribution, point[param_name]):
                return point[param_name]
        return self._model.sample_independent(study, trial, param_name, param_distribution)

    def _local_point(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """A step from the best trial so far: every numeric value moved by a Gaussian of width
        ``sigma`` in its unit range (log for log parameters), a categorical one changed to another
        choice with probability 1 / (number of parameters). ``sigma`` follows the one-fifth rule
        over the earlier local steps: x exp(0.8) after a step that improved on the best, x
        exp(-0.2) after one that did not. None (the model decides) with several objectives or no
        finished trial."""
        if trial.number not in self._local_cache:
            self._local_cache = {trial.number: self._step_from_best(study, trial.number)}
        return self._local_cache[trial.number]

    def _step_from_best(self, study: Study, number: int) -> dict[str, Any] | None:
        if len(study.directions) > 1:
            return None
        done = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number < number),
                      key=lambda t: t.number)
        if not done:
            return None
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        best, best_value, sigma = done[0], sign * float(done[0].value), 0.1
        for t in done[1:]:
            value = sign * float(t.value)
            if self.route(t.number) == "local":
                sigma *= math.exp(0.8) if value < best_value else math.exp(-0.2)
                sigma = min(0.5, max(1e-4, sigma))
            if value < best_value:
                best, best_value = t, value
        data = self._gp_space(study, number)
        if data is not None:  # the best by the model's mean: under noise the best value seen is luck
            gp = self._fit_gp(data, sign)
            best = data.trials[int(np.argmin(gp.predict(gp.x)[0]))]
        rng = np.random.default_rng(_key(self.seed, number, "local"))
        point = {}
        for name, value in best.params.items():
            dist = best.distributions[name]
            if isinstance(dist, CategoricalDistribution):
                point[name] = _other_choice(rng, dist, value) if rng.random() < 1.0 / len(best.params) else value
            else:
                point[name] = from_unit(dist, _reflect(to_unit(dist, value) + sigma * rng.standard_normal()))
        return point

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # the model's draws seeded by trial number: copies of this sampler in other processes
        # propose different points for different trials, and a re-run proposes the same ones
        seed_sampler(self._model, _key(self.seed, trial.number, "model"))
        self._model.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._pending.pop(trial.number, None)
        self._model.after_trial(study, trial, state, values)

    def __getstate__(self) -> dict[str, Any]:  # pickled to worker processes: a lock does not travel
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reseed_rng(self) -> None:  # draws are seeded by trial number; nothing to reseed
        pass

    def _around(self, number: int, name: str, dist: BaseDistribution, centre: Any) -> Any:
        """A draw near ``centre``: a Gaussian of width 0.15 of the unit range (reflected at its
        ends); a categorical keeps ``centre`` with probability 0.7, else another choice."""
        rng = np.random.default_rng(_key(self.seed, number, "prior", name))
        if isinstance(dist, CategoricalDistribution):
            return centre if rng.random() < 0.7 else _other_choice(rng, dist, centre)
        return from_unit(dist, _reflect(to_unit(dist, centre) + 0.15 * rng.standard_normal()))

    def _latin(self, number: int, name: str, dist: BaseDistribution) -> Any:
        """Slice ``number`` (of ``n_startup``) of ``name``'s range, in an order seeded by the name."""
        n = self.n_startup
        order = np.random.default_rng(_key(self.seed, "lhs", name)).permutation(n)
        u = (order[number % n] + self._uniform(number, "lhs", name)) / n
        return from_unit(dist, u)


class _GpData(NamedTuple):
    encoding: Encoding  # the parameters as the process's inputs
    trials: list[FrozenTrial]  # by number
    values: list[float]  # each trial's value (or its value at the chosen step), as reported
    unit: np.ndarray  # the trials' unit coordinates (row by row with ``trials``)


def _check_history(history: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """``history`` as ``[{"params": {...}, "value": float}]``, finite values only (at most
    ``GP_TRIALS``, the last ones), or a ConfigError naming the first bad entry."""
    out = []
    for i, h in enumerate(history or []):
        if not (isinstance(h, Mapping) and isinstance(h.get("params"), Mapping)
                and isinstance(h.get("value"), (int, float)) and not isinstance(h.get("value"), bool)):
            raise ConfigError(f"invalid history[{i}]: got {h!r}; allowed: a mapping with 'params' (a mapping of "
                              "parameter name -> value) and 'value' (a number)")
        if math.isfinite(float(h["value"])):
            out.append({"params": dict(h["params"]), "value": float(h["value"])})
    return out[-GP_TRIALS:]


def _reflect(u: float) -> float:
    """``u`` folded into [0, 1] by reflection at both ends (a step past an end comes back)."""
    u = abs(u) % 2.0
    return 2.0 - u if u > 1 else u


def _other_choice(rng: np.random.Generator, dist: CategoricalDistribution, value: Any) -> Any:
    """A choice other than ``value``, uniformly (``value`` itself when it is the only one)."""
    others = [c for c in dist.choices if c != value]
    return others[int(rng.integers(len(others)))] if others else value
