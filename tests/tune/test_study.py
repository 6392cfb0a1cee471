from __future__ import annotations

import importlib.util
import warnings

import optuna
import pytest
from honing_tune_toys import Curve, Quadratic, TwoObjectives

from honing import ConfigError, UnknownNameError
from honing.tune import (
    AutoSampler,
    ChoiceParam,
    FloatParam,
    IntParam,
    SearchSpace,
    create_pruner,
    create_sampler,
    list_pruners,
    list_samplers,
    optimize,
    resolve_storage,
)

SPACE = SearchSpace([FloatParam("x", 0.0, 1.0, step=0.05), IntParam("n", 1, 4), ChoiceParam("c", [[1], [2, 3]])])


def test_registries_list_every_name():
    assert list_samplers() == sorted(["grid", "random", "qmc", "tpe", "gp", "cmaes", "nsga2", "auto"])
    assert list_pruners() == sorted(["none", "median", "percentile", "asha", "hyperband", "auto"])


@pytest.mark.parametrize("name", list_samplers())
def test_every_sampler_runs_a_few_trials(name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cmaes: choice parameters sampled at random
        sampler = create_sampler(name, seed=0, space=SPACE, directions=["maximize"], n_trials=6)
    result = optimize(Quadratic(), study_name=name, storage=None, space=SPACE, sampler=sampler, n_trials=6,
                      run_dir=tmp_path, progress=False)
    assert result.counts["complete"] == 6 and len(result.trials) == 6
    assert all(t["params"]["c"] in ([1], [2, 3]) for t in result.trials)
    assert result.best_value == max(t["values"][0] for t in result.trials)


def test_nsga2_runs_a_multi_objective_study(tmp_path):
    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    sampler = create_sampler(None, seed=0, space=space, directions=["minimize", "minimize"], n_trials=12)
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    result = optimize(TwoObjectives(), study_name="mo", storage=None, space=space, sampler=sampler,
                      directions=["minimize", "minimize"], n_trials=12, run_dir=tmp_path, progress=False)
    assert result.counts["complete"] == 12 and result.best_value is None and result.best_params == {}
    assert len(result.pareto) == 12  # f1 = x, f2 = (1 - x)^2: every point is on the front
    assert result.directions == ["minimize", "minimize"]


def test_sampler_defaults_and_options():
    auto = create_sampler(None, seed=3, space=SPACE, n_trials=12)  # the default: auto
    assert isinstance(auto, AutoSampler) and auto.n_startup == 4
    tpe = create_sampler("tpe", seed=3, space=SPACE, n_trials=12)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._n_startup_trials == 4
    tpe = create_sampler({"name": "tpe", "n_startup_trials": 7}, seed=3, space=SPACE)
    assert tpe._n_startup_trials == 7
    with pytest.raises(ConfigError, match="unknown option 'startup' for sampler 'tpe'; allowed: .*n_startup_trials"):
        create_sampler("tpe", seed=0, space=SPACE, startup=3)
    with pytest.raises(ConfigError, match="invalid options for sampler 'qmc'"):
        create_sampler("qmc", seed=0, space=SPACE, qmc_type="lattice")
    with pytest.raises(UnknownNameError, match="Did you mean 'tpe'"):
        create_sampler("tpee", seed=0, space=SPACE)
    with pytest.raises(ConfigError, match="sampler for 2 objectives: got 'cmaes'"):
        create_sampler("cmaes", seed=0, space=SPACE, directions=["maximize", "minimize"])
    with pytest.raises(ConfigError, match="direction"):
        create_sampler("tpe", seed=0, space=SPACE, directions=["up"])


def test_grid_sampler_needs_a_finite_space():
    with pytest.raises(ConfigError, match="lr is a float without step"):
        create_sampler("grid", seed=0, space=SearchSpace([FloatParam("lr", 1e-3, 1.0, log=True)]))


def test_cmaes_says_which_params_it_samples_at_random():
    with pytest.warns(UserWarning, match="c will be sampled at random"):
        create_sampler("cmaes", seed=0, space=SPACE)


@pytest.mark.parametrize("name", list_pruners())
def test_every_pruner_runs_and_the_early_stopping_ones_stop_bad_trials(name, tmp_path):
    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    pruner = create_pruner(name, max_epochs=9, n_trials=16)
    result = optimize(Curve(epochs=9), study_name=name, storage=None, space=space,
                      sampler=create_sampler("random", seed=0, space=space), pruner=pruner, n_trials=16,
                      run_dir=tmp_path, progress=False)
    assert result.counts["complete"] + result.counts["pruned"] == 16
    if name == "none":
        assert result.counts["pruned"] == 0
    elif name in ("asha", "median", "hyperband"):
        assert result.counts["pruned"] >= 3
        pruned = [t for t in result.trials if t["state"] == "pruned"]
        assert any(len(t["intermediate"]) < 9 for t in pruned)  # stopped before the last epoch
        if name == "median":
            assert all(len(t["intermediate"]) >= 2 for t in pruned)  # epoch 1 is warm-up
        # the best trial survived: it is never pruned
        best_x = max(result.trials, key=lambda t: 1 - (t["params"]["x"] - 0.3) ** 2)
        assert best_x["state"] == "complete"


def test_pruner_settings_and_multi_objective_fallback():
    hb = create_pruner("hyperband", max_epochs=40)
    assert isinstance(hb, optuna.pruners.HyperbandPruner) and hb._max_resource == 40 and hb._reduction_factor == 3
    asha = create_pruner("asha", max_epochs=40)
    assert isinstance(asha, optuna.pruners.SuccessiveHalvingPruner)
    # the first decision at ~1/9 of the epochs (not after one noisy epoch), the next at 3x that
    assert [create_pruner("asha", max_epochs=e)._min_resource for e in (3, 8, 12, 40, 52)] == [1, 2, 2, 5, 6]
    assert create_pruner("asha", max_epochs=40, min_resource=1)._min_resource == 1  # the recipe can override
    assert create_pruner({"name": "percentile", "percentile": 50.0}, max_epochs=10)._percentile == 50.0
    assert create_pruner("percentile", max_epochs=10)._percentile == 25.0
    with pytest.warns(UserWarning, match="several objectives"):
        nop = create_pruner("asha", max_epochs=10, directions=["maximize", "minimize"])
    assert isinstance(nop, optuna.pruners.NopPruner)
    with pytest.raises(ConfigError, match="unknown option 'patience' for pruner 'median'"):
        create_pruner("median", max_epochs=10, patience=3)
    with pytest.raises(ConfigError, match="max_epochs"):
        create_pruner("asha", max_epochs=0)


def test_storage_forms(tmp_path):
    default = resolve_storage(None, tmp_path / "run")
    assert default.url == str((tmp_path / "run" / "study.journal").resolve())
    assert isinstance(default.storage, optuna.storages.JournalStorage)
    journal = resolve_storage(str(tmp_path / "other.journal"), tmp_path)
    assert journal.url.endswith("other.journal")
    sqlite = resolve_storage(f"sqlite:///{tmp_path}/db/s.db", tmp_path)
    assert isinstance(sqlite.storage, optuna.storages.BaseStorage)  # an RDB storage behind reconnection retries
    assert sqlite.storage.get_heartbeat_interval() == 60 and type(sqlite.storage).__name__ == "ReconnectingStorage"
    with pytest.raises(ConfigError, match="allowed: .*sqlite:///.*postgresql://"):
        resolve_storage("mysql://u@h/db", tmp_path)
    with pytest.raises(ConfigError, match="allowed"):
        resolve_storage(str(tmp_path / "study.db"), tmp_path)


def test_postgresql_without_driver_says_what_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg2" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install psycopg2-binary"):
        resolve_storage("postgresql://user:pw@localhost/db", tmp_path)
