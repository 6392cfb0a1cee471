"""AutoSampler on plain Optuna studies: every distribution kind, conditional parameters, start
points, the Latin hypercube, failed and pruned trials, parallel workers, several objectives; and
as honing's `sampler: auto`, starting from the recipe's own values."""

from __future__ import annotations

import threading
import time

import numpy as np
import optuna
import pytest

from honing._core import ConfigError
from honing.tune import AutoSampler, SearchSpace, create_sampler, optimize

optuna.logging.set_verbosity(optuna.logging.WARNING)


def mixed(trial: optuna.Trial) -> float:
    """A conditional space with every distribution kind; its best is kind=a, x=1e-2, n=5."""
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if kind == "a":
        x = trial.suggest_float("x", 1e-4, 1.0, log=True)
        n = trial.suggest_int("n", 1, 9, step=2)
        return (np.log10(x) + 2) ** 2 + (n - 5) ** 2 / 10
    y = trial.suggest_float("y", -1.0, 1.0, step=0.25)
    m = trial.suggest_int("m", 1, 100, log=True)
    return 1.0 + y**2 + np.log(m) / 10


def run(sampler: optuna.samplers.BaseSampler, objective=mixed, n: int = 40, **kw) -> optuna.Study:
    study = optuna.create_study(sampler=sampler, **kw)
    study.optimize(objective, n_trials=n)
    return study


def test_any_study_every_distribution_kind_and_reproducible():
    first, again = run(AutoSampler(seed=3)), run(AutoSampler(seed=3))
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in run(AutoSampler(seed=4)).trials] != [t.params for t in first.trials]
    for t in first.trials:
        for name, value in t.params.items():
            assert t.distributions[name]._contains(t.distributions[name].to_internal_repr(value))
    a = [t for t in first.trials if t.params["kind"] == "a"]
    assert all(t.params["n"] in (1, 3, 5, 7, 9) for t in a)
    assert {t.params["kind"] for t in first.trials} == {"a", "b"}
    assert first.best_value < 0.5  # the model found the good corner of the conditional space


def test_start_points_first_and_the_hypercube_covers_each_range_once():
    start = [{"kind": "a", "x": 0.01, "n": 5}, {"kind": "b", "y": 7.0, "m": 10}]  # y=7 is out of range
    sampler = AutoSampler(seed=0, start=start, n_startup=8)
    study = run(sampler, n=12)
    assert study.trials[0].params == {"kind": "a", "x": 0.01, "n": 5} and study.trials[0].value == 0.0
    assert study.trials[1].params["m"] == 10 and -1 <= study.trials[1].params["y"] <= 1
    assert [sampler.route(i) for i in range(9)] == ["start", "start", *["lhs"] * 6, "model"]
    # one float over 10 start-up trials: each tenth of its (log) range exactly once
    hyper = optuna.create_study(sampler=AutoSampler(seed=1, n_startup=10))
    hyper.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-1, log=True), n_trials=10)
    slices = sorted(int((np.log10(t.params["lr"]) + 5) / 4 * 10) for t in hyper.trials)
    assert slices == list(range(10))
    with pytest.raises(ConfigError, match="random_share"):
        AutoSampler(seed=0, random_share=0.9)


def test_failed_and_pruned_trials_do_not_stop_it():
    def flaky(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -2, 2)
        if trial.number % 5 == 1:
            raise ValueError("a trial that fails")
        trial.report(x * x, 1)
        if trial.number % 5 == 2:
            raise optuna.TrialPruned()
        return x * x

    study = optuna.create_study(sampler=AutoSampler(seed=0))
    study.optimize(flaky, n_trials=40, catch=(ValueError,))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 8 and states.count(optuna.trial.TrialState.PRUNED) == 8
    assert study.best_value < 0.05


def test_two_parallel_workers_never_propose_the_same_point():
    lock, running = threading.Lock(), []

    def slow(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("k", 0, 3)
        with lock:
            running.append(trial.number)
        time.sleep(0.01)
        return (x - 0.3) ** 2 + y

    study = optuna.create_study(sampler=AutoSampler(seed=0))
    study.optimize(slow, n_trials=60, n_jobs=2)
    points = [(t.params["x"], t.params["k"]) for t in study.trials]
    assert len(set(points)) == len(points) == 60


def test_several_objectives():
    def two(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x, (1 - x) ** 2

    study = run(AutoSampler(seed=0), objective=two, n=30, directions=["minimize", "minimize"])
    assert len(study.trials) == 30 and len(study.best_trials) >= 3


def test_sampler_auto_in_honing_starts_from_the_recipes_values(tmp_path):
    space = SearchSpace.from_spec({"training.lr": {"float": [1e-4, 1e-1], "log": True},
                                   "model.act": {"choice": ["relu", "gelu"]}})
    sampler = create_sampler("auto", seed=0, space=space, n_trials=6)
    assert isinstance(sampler, AutoSampler) and sampler.n_startup == 2
    seen = []

    def objective(params, reporter):
        seen.append(params)
        return -abs(np.log10(params["training.lr"]) + 2)

    base = {"training": {"lr": 0.003}, "model": {"act": "gelu"}}
    result = optimize(objective, study_name="auto", storage=None, space=space, sampler="auto", n_trials=6,
                      seed=0, base=base, progress=False, run_dir=tmp_path)
    assert seen[0] == {"training.lr": 0.003, "model.act": "gelu"} and len(result.trials) == 6


def test_local_steps_start_from_the_best_trial_and_shrink_as_they_fail():
    sampler = AutoSampler(seed=0, n_startup=5, random_share=0.0, local_share=0.9)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1.234) ** 2, n_trials=60)
    local = [t for t in study.trials if sampler.route(t.number) == "local"]
    assert len(local) > 40 and abs(study.best_params["x"] - 1.234) < 1e-2
    # late local steps are small: they search close to the best point
    assert np.median([abs(t.params["x"] - 1.234) for t in local[-10:]]) < 0.2
    with pytest.raises(ConfigError, match="leave the model no trials"):
        AutoSampler(seed=0, random_share=0.5, local_share=0.5)


def test_a_prior_is_the_first_trial_and_draws_the_early_ones_near_it(tmp_path):
    from honing.tune import SpaceError

    space = SearchSpace.from_spec({"lr": {"float": [1e-5, 1e-1], "log": True, "prior": 1e-3},
                                   "act": {"choice": ["relu", "gelu", "tanh"], "prior": "gelu"},
                                   "layers": {"int": [1, 8], "prior": 3}})
    assert space.priors() == {"lr": 1e-3, "act": "gelu", "layers": 3}
    assert SearchSpace.from_spec(space.to_spec()) == space  # the prior survives the study's record
    seen = []

    def objective(params, reporter):
        seen.append(params)
        return -abs(np.log10(params["lr"]) + 2)  # the best lr is 1e-2, not the prior

    base = {"lr": 0.03, "act": "relu", "layers": 2}  # the prior overrides the recipe's own value
    optimize(objective, study_name="prior", storage=None, space=space, sampler="auto", n_trials=30, seed=0,
             base=base, progress=False, run_dir=tmp_path)
    assert seen[0] == {"lr": 1e-3, "act": "gelu", "layers": 3}
    sampler = AutoSampler(seed=0, n_trials=30, priors={"lr": 1e-3})
    routed = [n for n in range(10, 30) if sampler.route(n) == "prior"]
    assert 2 <= len(routed) <= 12
    near = [abs(np.log10(seen[n]["lr"]) + 3) for n in routed]
    assert np.median(near) < 1.2  # within about one decade of the prior (the range spans four)
    for bad, match in (({"float": [0, 1], "prior": 2}, r"tune.space.x: prior 2.0 is outside \[0, 1\]"),
                       ({"int": [1, 9], "step": 2, "prior": 4}, "prior 4 is not a value of 1..9 by 2"),
                       ({"choice": ["a", "b"], "prior": "c"}, "prior 'c' is not one of the choices")):
        with pytest.raises(SpaceError, match=match):
            SearchSpace.from_spec({"x": bad})
