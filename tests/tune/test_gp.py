"""The Gaussian process behind AutoSampler's all-numeric spaces: its gradient, its fit, the
output warping, the acquisition's tail, and how the sampler routes to it."""

from __future__ import annotations

import numpy as np
import pytest
import optuna
from scipy.optimize import check_grad

from honing._core import ConfigError
from honing.tune import AutoSampler
from honing.tune._gp import GaussianProcess, log_ei, propose, warp

optuna.logging.set_verbosity(optuna.logging.WARNING)


def bowl(x: np.ndarray) -> np.ndarray:
    return np.sum((x - 0.3) ** 2, axis=-1)


def test_the_fit_follows_its_gradient_and_recovers_a_smooth_function():
    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    z = warp(bowl(x))
    gp = GaussianProcess(x, z)
    theta = np.array([-0.5, 0.2, -1.0, 0.3, -4.0])
    err = check_grad(lambda t: gp._nlp(t, x, z, grad=False), lambda t: gp._nlp(t, x, z)[1], theta)
    assert err < 1e-3 * np.linalg.norm(gp._nlp(theta, x, z)[1])
    test = rng.random((200, 3))
    mean, sd = gp.predict(test)
    truth = warp(np.concatenate([bowl(x), bowl(test)]))[40:]  # the same warp, applied jointly
    assert np.corrcoef(mean, truth)[0, 1] > 0.95 and np.all(sd > 0)
    at_data, sd_data = gp.predict(x)
    assert np.abs(at_data - z).max() < 0.1 and sd_data.mean() < sd.mean()
    point = propose(gp, np.random.default_rng(1))  # the proposal lies near the bowl's bottom
    assert np.all((point >= 0) & (point <= 1)) and np.linalg.norm(point - 0.3) < 0.25


def test_warping_keeps_the_order_and_tames_a_heavy_tail():
    y = np.concatenate([np.linspace(0, 1, 30), [1e6]])  # one diverged trial
    z = warp(y)
    assert np.all(np.diff(z) > 0) and abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    assert z[29] - z[0] > 0.5  # the good trials keep their spread (standardising alone squeezes them to ~0.003)
    assert np.all(warp(np.ones(5)) == 0)


def test_log_expected_improvement_is_finite_and_ordered_far_into_the_tail():
    mean = np.array([0.0, 1.0, 5.0, 20.0, 60.0])
    values = log_ei(mean, np.full(5, 0.5), best=0.0)
    assert np.all(np.isfinite(values)) and np.all(np.diff(values) < 0)


def test_the_process_takes_numbers_categoricals_and_conditions_on_a_categorical():
    sampler = AutoSampler(seed=0, n_startup=5)
    numeric = optuna.create_study(sampler=sampler)
    numeric.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_int("k", 1, 64, log=True), n_trials=8)
    assert sampler._gp_space(numeric, 8) is not None
    mixed = optuna.create_study(sampler=AutoSampler(seed=0))
    mixed.optimize(lambda t: t.suggest_float("x", 0, 1) + len(t.suggest_categorical("c", ["a", "bb"])), n_trials=8)
    data = mixed.sampler._gp_space(mixed, 8)
    assert data.encoding.n_features == 3  # x, and c one-hot

    def on_a_choice(t: optuna.Trial) -> float:
        opt = t.suggest_categorical("opt", ["sgd", "adam", "lion"])
        return t.suggest_float("momentum", 0, 1) if opt == "sgd" else 0.5

    chosen = optuna.create_study(sampler=AutoSampler(seed=0))
    chosen.optimize(on_a_choice, n_trials=12)
    enc = chosen.sampler._gp_space(chosen, 12).encoding
    assert enc.rules == {"momentum": ("opt", frozenset({"sgd"}))}
    u = np.array([[0.9, 0.1], [0.9, 0.5]])  # momentum 0.9 with sgd (slice 0), then with adam (slice 1)
    assert enc.point(u[0]) == {"momentum": 0.9, "opt": "sgd"} and enc.point(u[1]) == {"opt": "adam"}
    assert np.allclose(enc.features(u), [[0.9, 1, 0, 0], [0.5, 0, 1, 0]])  # absent: the middle of its range

    def on_a_number(t: optuna.Trial) -> float:
        x = t.suggest_float("x", 0, 1)
        return t.suggest_float("y", 0, 1) if x > 0.5 else x

    cond = optuna.create_study(sampler=AutoSampler(seed=0))
    cond.optimize(on_a_number, n_trials=12)
    assert cond.sampler._gp_space(cond, 12) is None
    capped = AutoSampler(seed=0, gp_trials=6)
    study = optuna.create_study(sampler=capped)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=8)
    assert capped._gp_space(study, 8) is None  # past its budget the TPE model takes over


def test_the_process_finds_a_narrow_optimum_tpe_alone_misses():
    def ellipsoid(t: optuna.Trial) -> float:
        x = np.array([t.suggest_float(f"x{i}", -5, 5) for i in range(4)])
        return float(np.sum(10 ** (np.arange(4) * 1.5) * (x - 1.1) ** 2))

    with_gp = optuna.create_study(sampler=AutoSampler(seed=0, n_trials=50))
    with_gp.optimize(ellipsoid, n_trials=50)
    without = optuna.create_study(sampler=AutoSampler(seed=0, n_trials=50, gp_trials=0))
    without.optimize(ellipsoid, n_trials=50)
    assert with_gp.best_value < 0.1 * without.best_value


def test_the_process_finds_the_best_choice_and_its_numbers_where_tpe_alone_does_not():
    def shifted(t: optuna.Trial) -> float:
        act = t.suggest_categorical("act", ["relu", "gelu", "tanh", "sigmoid"])
        x = np.array([t.suggest_float(f"x{i}", -5, 5) for i in range(3)])
        return float(np.sum(10.0 ** np.arange(3) * (x - 1.1) ** 2) + {"relu": 1, "gelu": 0, "tanh": 2, "sigmoid": 3}[act])

    with_gp = optuna.create_study(sampler=AutoSampler(seed=0, n_trials=50))
    with_gp.optimize(shifted, n_trials=50)
    without = optuna.create_study(sampler=AutoSampler(seed=0, n_trials=50, gp_trials=0))
    without.optimize(shifted, n_trials=50)
    assert with_gp.best_params["act"] == "gelu" and with_gp.best_value < 0.05 < without.best_value


def test_local_steps_start_from_the_models_best_not_the_luckiest_value():
    rng = np.random.default_rng(0)
    sampler = AutoSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    dist = optuna.distributions.FloatDistribution(0, 1)
    xs = np.linspace(0, 1, 41)
    for x in xs:
        study.add_trial(optuna.trial.create_trial(params={"x": float(x)}, distributions={"x": dist},
                                                  value=float((x - 0.5) ** 2 + 0.02 * rng.standard_normal())))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.9}, distributions={"x": dist}, value=-0.2))  # luck
    data = sampler._gp_space(study, len(study.trials))
    gp = sampler._fit_gp(data, 1.0)
    centre = data.trials[int(np.argmin(gp.predict(gp.x)[0]))].params["x"]
    assert abs(centre - 0.5) < 0.15 and study.best_params["x"] == 0.9


def test_stopped_trials_teach_the_process_at_the_latest_well_filled_step():
    study = optuna.create_study(sampler=AutoSampler(seed=0))
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i, x in enumerate(np.linspace(0.05, 0.95, 8)):  # 8 trials stopped at step 3, 2 finished at step 9
        steps = range(1, 10) if i in (2, 6) else range(1, 4)
        state = optuna.trial.TrialState.COMPLETE if i in (2, 6) else optuna.trial.TrialState.PRUNED
        curve = {s: float((x - 0.5) ** 2 + 1.0 / s) for s in steps}
        study.add_trial(optuna.trial.create_trial(params={"x": float(x)}, distributions=dist, state=state,
                                                  intermediate_values=curve,
                                                  value=curve[9] if state.name == "COMPLETE" else None))
    data = study.sampler._gp_space(study, len(study.trials))
    assert len(data.trials) == 8 and data.values[0] == (0.05 - 0.5) ** 2 + 1.0 / 3  # every trial, at step 3
    gp = study.sampler._fit_gp(data, 1.0)
    assert abs(data.trials[int(np.argmin(gp.predict(gp.x)[0]))].params["x"] - 0.5) < 0.2
    plain = optuna.create_study(sampler=AutoSampler(seed=0))  # no intermediate values: the finished trials
    plain.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=5)
    assert len(plain.sampler._gp_space(plain, 5).trials) == 5


def test_an_optimum_at_a_bound_is_not_tried_twice():
    # the model's candidates are clipped to the range, so they land exactly on a bound; an integer
    # rounds many candidates to one value: a point already tried is never proposed again
    def at_bound(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1) + trial.suggest_int("k", 0, 3)

    study = optuna.create_study(sampler=AutoSampler(seed=0))
    study.optimize(at_bound, n_trials=60)
    points = [(t.params["x"], t.params["k"]) for t in study.trials]
    assert len(set(points)) == len(points)
    assert study.best_value == 0.0


def test_parallel_workers_on_a_conditional_space_share_the_process_without_repeats():
    import threading
    import time

    lock = threading.Lock()

    def slow(t: optuna.Trial) -> float:
        opt = t.suggest_categorical("opt", ["sgd", "adam"])
        lr = t.suggest_float("lr", 1e-4, 1e-1, log=True)
        momentum = t.suggest_float("momentum", 0.0, 0.99) if opt == "sgd" else 0.9
        with lock:
            time.sleep(0.005)
        return (np.log10(lr) + 2.5) ** 2 + (momentum - 0.9) ** 2 + (0.3 if opt == "adam" else 0.0)

    study = optuna.create_study(sampler=AutoSampler(seed=0, n_trials=40))
    study.optimize(slow, n_trials=40, n_jobs=2)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == len(points) == 40
    data = study.sampler._gp_space(study, 40)
    assert data is not None and data.encoding.rules == {"momentum": ("opt", frozenset({"sgd"}))}
    assert study.best_params["opt"] == "sgd" and study.best_value < 0.05


def _shifted_bowl(shift: float, sign: float = 1.0):
    def objective(t: optuna.Trial) -> float:
        x = np.array([t.suggest_float(f"x{i}", -5, 5) for i in range(4)])
        c = t.suggest_categorical("c", ["a", "b", "c"])
        return sign * float(np.sum((x - shift) ** 2) + (0.0 if c == "b" else 3.0))
    return objective


def test_a_related_studys_trials_lead_the_process_and_a_misleading_one_loses_its_weight():
    source = optuna.create_study(sampler=AutoSampler(seed=0))
    source.optimize(_shifted_bowl(1.0), n_trials=60)
    history = [{"params": t.params, "value": t.value} for t in source.trials]
    best = {}
    for name, hist in [("cold", None), ("related", history),
                       ("misleading", [{"params": h["params"], "value": -h["value"]} for h in history])]:
        sampler = AutoSampler(seed=0, n_startup=5, history=hist)
        study = optuna.create_study(sampler=sampler)
        study.optimize(_shifted_bowl(1.3), n_trials=20)  # the optimum moved: related, not the same task
        best[name] = study.best_value
        if hist is not None:
            best[name + " weight"] = sampler._gp[1].beta
    # measured (seed 0): cold 7.7, related 0.008 (weight 1.09), misleading 1.4 (weight 0)
    assert best["related"] < 0.05 < 1.0 < best["cold"]
    assert best["related weight"] > 0.8 and best["misleading weight"] < 0.2
    assert best["misleading"] < 2 * best["cold"]


def test_history_is_checked_and_trials_outside_the_space_are_left_out():
    import pytest

    from honing._core import ConfigError

    with pytest.raises(ConfigError, match=r"invalid history\[1\]: got .*allowed: a mapping with 'params'"):
        AutoSampler(seed=0, history=[{"params": {"x": 1}, "value": 1.0}, {"params": {"x": 1}}])
    sampler = AutoSampler(seed=0, n_startup=3, history=[
        {"params": {"x": 0.1 * i}, "value": (0.1 * i - 0.5) ** 2} for i in range(10)] + [
        {"params": {"x": 7.0}, "value": -100.0},  # outside this study's range: not learned from
        {"params": {"x": 0.5, "y": 1}, "value": -100.0},  # a parameter this study lacks
        {"params": {"x": 0.5}, "value": float("nan")}])
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.5) ** 2, n_trials=6)
    assert len(sampler._source[1].x) == 10


def test_past_100_trials_the_fit_runs_every_fifth_trial_and_the_first_100_are_unchanged(monkeypatch):
    import honing.tune._auto as auto

    fits: list[tuple[int, bool]] = []
    real = auto.GaussianProcess

    def spy(x, z, theta=None, *, fit=True, **kw):
        fits.append((len(x), fit))
        return real(x, z, theta, fit=fit, **kw)

    def run(refit_every: int) -> list[dict]:
        study = optuna.create_study(sampler=AutoSampler(seed=3, random_share=0, local_share=0,
                                                        refit_every=refit_every))
        study.optimize(lambda t: float(bowl(np.array([t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 1)]))),
                       n_trials=112)
        return [t.params for t in study.trials]

    monkeypatch.setattr(auto, "GaussianProcess", spy)
    every = run(1)
    assert all(fit for _, fit in fits)
    fits.clear()
    fifth = run(5)
    seen = dict(fits)  # trials in the process -> whether its hyperparameters were fitted
    assert all(seen[n] for n in seen if n <= 100)
    assert [n for n in seen if n > 100 and seen[n]] == [105, 110]
    assert not any(seen[n] for n in (101, 104, 106, 111))
    # the same proposals while the fit runs every trial; after that they may differ
    assert fifth[:101] == every[:101] and fifth[101:] != every[101:]
    with pytest.raises(ConfigError, match="refit_every"):
        AutoSampler(refit_every=0)
