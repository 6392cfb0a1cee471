"""``honing.pipeline.run`` / ``train_once``: failed trials, the final model, determinism, and
continuing a study in the same output folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from _run_helpers import journal_of, results_of, tiny
from safetensors.torch import load_file

import honing
from honing import ConfigError
from honing._core import RunFailedError
from honing.pipeline import run, train_once

SGD = {"training.optimizer": {"name": "sgd", "lr": 0.01}, "training.early_stopping": None, "tune.sampler": "grid",
       "tune.n_trials": None}


def test_a_diverging_trial_is_recorded_failed_with_its_reason_and_the_study_completes(tmp_path):
    recipe = tiny({**SGD, "tune.space": {"training.optimizer.lr": {"choice": [0.01, 1.0e8]}}})
    result = run(recipe, out=tmp_path, progress=False)
    assert result.results["trials"] == {"complete": 1, "pruned": 0, "fail": 1, "running": 0, "waiting": 0}
    (failed,) = [t for t in journal_of(tmp_path).trials if t["state"] == "fail"]
    assert failed["params"] == {"training.optimizer.lr": 1.0e8}
    assert failed["user_attrs"]["error"].startswith("DivergedError: training diverged")
    assert result.results["best_params"] == {"training.optimizer.lr": 0.01}
    assert results_of(tmp_path) == result.results and (tmp_path / "model" / "model.safetensors").is_file()
    assert "DivergedError: training diverged" in (tmp_path / "report.html").read_text()


def test_a_search_whose_every_trial_fails_says_so(tmp_path):
    recipe = tiny({**SGD, "tune.space": {"training.optimizer.lr": {"choice": [1.0e8, 1.0e9]}}})
    with pytest.raises(RunFailedError, match="finished no trial"):
        run(recipe, out=tmp_path, progress=False)
    assert journal_of(tmp_path).counts["fail"] == 2 and not (tmp_path / "results.json").exists()
    # the CLI: a failure of the work (exit 1), not bad input (exit 2)
    from honing.cli import main as cli
    from _run_helpers import write_recipe

    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert cli(["run", str(path), "--out", str(tmp_path / "cli"), "--quiet"]) == 1


def test_final_best_trial_keeps_that_trials_weights(tmp_path):
    result = run(tiny({"tune.final": "best_trial", "tune.n_trials": 3, "tune.pruner": "none"}), out=tmp_path,
                 progress=False)
    best = result.results["best_trial"]
    assert result.results["final_model"] == f"weights of trial {best}"
    saved, kept = load_file(str(tmp_path / "model" / "model.safetensors")), load_file(
        str(tmp_path / "trials" / f"{best}.safetensors"))
    assert saved.keys() == kept.keys() and all(torch.equal(saved[k], kept[k]) for k in saved)
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [f"{n}.safetensors" for n in range(3)]


def test_cross_validation_runs_and_cannot_keep_a_trials_weights(tmp_path):
    result = run(tiny({"tune.cv": 2, "tune.n_trials": 2, "tune.pruner": "none"}), out=tmp_path / "cv",
                 progress=False)
    assert result.results["final_model"].startswith("retrained on train+validation")
    assert all(len(t["user_attrs"]["curve"]) >= 1 for t in journal_of(tmp_path / "cv").trials)
    with pytest.raises(ConfigError, match="tune.final"):
        run(tiny({"tune.cv": 2, "tune.final": "best_trial"}), out=tmp_path / "refused", progress=False)
    assert not (tmp_path / "refused").exists()


def test_the_same_recipe_and_seed_give_the_same_run(tmp_path):
    recipe = tiny({"tune.n_trials": 3})
    first, second = (run(recipe, out=tmp_path / name, progress=False).results for name in ("a", "b"))
    for key in ("best_params", "best_value", "best_trial", "trials", "test_metrics"):
        assert first[key] == second[key], key
    other = run(recipe, out=tmp_path / "c", seed=1, progress=False).results
    assert other["seed"] == 1 and other["best_params"] != first["best_params"]


def test_a_larger_budget_on_the_same_folder_continues_the_study(tmp_path):
    recipe = tiny({"tune.n_trials": 2, "tune.sampler": "random"})
    before = run(recipe, out=tmp_path, progress=False)
    first = journal_of(tmp_path).trials
    after = run(recipe, out=tmp_path, n_trials=4, progress=False)
    trials = journal_of(tmp_path).trials
    assert sum(before.results["trials"].values()) == 2 and sum(after.results["trials"].values()) == 4
    assert trials[:2] == first and len(trials) == 4
    assert len({str(t["params"]) for t in trials}) == 4  # the continued sampler does not replay the first draws


def test_run_without_a_search_trains_once(tmp_path):
    recipe = tiny({"tune": None})
    result = run(recipe, out=tmp_path / "run", progress=False)
    again = train_once(recipe, out=tmp_path / "train", progress=False)
    assert result.results["trials"] == {} and result.results["final_model"].startswith("trained once")
    assert result.test_metrics == again.test_metrics
    loaded = honing.load_model(tmp_path / "run")
    assert loaded.recipe["model"] == again.results["recipe"]["model"]


def test_training_once_resumes_only_the_same_recipe(tmp_path):
    from honing._core import ConfigError

    recipe = tiny({"tune": None})
    first = train_once(recipe, out=tmp_path, progress=False)
    again = train_once(recipe, out=tmp_path, progress=False)  # its finished checkpoint: nothing retrained
    assert again.test_metrics == first.test_metrics
    changed = tiny({"tune": None, "training.epochs": 5})
    with pytest.raises(ConfigError, match="different recipe.*training"):
        train_once(changed, out=tmp_path, progress=False)


def test_a_folder_whose_last_process_died_writing_the_journal_resumes_at_once(tmp_path):
    # the process is killed (SIGKILL, the OOM killer) while it appends to the study journal
    script = (
        "import os, signal, optuna\n"
        "from honing.tune import resolve_storage\n"
        f"storage = resolve_storage(None, {str(tmp_path)!r}).storage\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "optuna.create_study(study_name='dead', storage=storage)\n"
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert died.returncode == -signal.SIGKILL, died.stderr
    start = time.monotonic()
    result = run(tiny({"tune.n_trials": 2}), out=tmp_path, progress=False)
    assert time.monotonic() - start < 20  # not held up by a lock the dead process left behind
    assert sum(result.results["trials"].values()) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_the_parent_of_a_multi_worker_search_holds_no_data_while_workers_train(tmp_path, monkeypatch, workers):
    import gc

    import honing.tune
    from honing.data import Dataset

    real, seen = honing.tune.optimize, []

    def alive() -> int:
        import warnings

        gc.collect()
        with warnings.catch_warnings():  # isinstance on a lazy torch module warns of its deprecated names
            warnings.simplefilter("ignore")
            return sum(isinstance(o, Dataset) for o in gc.get_objects())

    def optimize(objective, **kw):
        seen.append(alive() - before)  # data sets the parent holds when the search starts (the objective's own)
        if kw["workers"] > 1:  # the trials themselves run here, in-process, to keep the test fast
            kw["workers"] = 1
        return real(objective, **kw)

    monkeypatch.setattr(honing.tune, "optimize", optimize)
    before = alive()
    result = run(tiny({"tune.n_trials": 2}), out=tmp_path, workers=workers, progress=False)
    assert seen == [0 if workers > 1 else 1]  # one process (workers=1) keeps it for its own trials
    assert result.results["test_metrics"]["accuracy"] > 0  # reloaded for the final model and the test
