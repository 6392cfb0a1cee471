from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import honing_tune_toys
import optuna
import pytest
from honing_tune_toys import Curve, DieOnce, Echo, Failing, InterruptAt, Quadratic, TwoObjectives

from honing import ConfigError
from honing._core import HoningError
from honing.tune import (
    ChoiceParam,
    FloatParam,
    IntParam,
    SearchSpace,
    create_pruner,
    create_sampler,
    load_study_result,
    optimize,
    param_importances,
    resolve_storage,
    select_from_pareto,
)

X = SearchSpace([FloatParam("x", 0.0, 1.0)])


def _run(objective, tmp_path, *, space=X, n_trials, sampler="random", name="s", **kw):
    if isinstance(sampler, str):
        sampler = create_sampler(sampler, seed=0, space=space, directions=kw.get("directions", ["maximize"]),
                                 n_trials=n_trials)
    return optimize(objective, study_name=name, storage=kw.pop("storage", None), space=space, sampler=sampler,
                    n_trials=n_trials, run_dir=tmp_path, progress=False, **kw)


def test_default_storage_is_a_journal_in_the_run_dir(tmp_path):
    result = _run(Quadratic(), tmp_path, n_trials=3)
    journal = tmp_path / "study.journal"
    assert journal.is_file() and result.storage_url == str(journal.resolve())
    loaded = load_study_result(result.storage_url, "s")
    assert loaded.counts == result.counts == {"complete": 3, "pruned": 0, "fail": 0, "running": 0, "waiting": 0}
    assert [t["params"] for t in loaded.trials] == [t["params"] for t in result.trials]
    trial = result.trials[0]
    assert set(trial) == {"number", "state", "params", "values", "intermediate", "user_attrs", "datetime_start",
                          "duration_s"}
    assert trial["duration_s"] >= 0 and trial["user_attrs"]["seed"] == 0 + trial["number"]  # reporter.seed
    json.dumps(result.trials)  # plain data


def test_sqlite_url_works(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    result = _run(Curve(epochs=3), tmp_path, n_trials=4, storage=url,
                  pruner=create_pruner("median", max_epochs=3))
    assert result.storage_url == url and result.counts["complete"] + result.counts["pruned"] == 4
    again = _run(Curve(epochs=3), tmp_path, n_trials=6, storage=url)
    assert len(again.trials) == 6
    assert load_study_result(url, "s").counts == again.counts
    assert all(list(t["intermediate"]) == [1, 2, 3] for t in again.trials if t["state"] == "complete")


def test_exact_budget_with_two_workers_and_reruns(tmp_path):
    first = _run(Curve(epochs=3, sleep=0.01), tmp_path, n_trials=9, workers=2)
    assert len(first.trials) == 9 and first.counts["complete"] == 9
    assert {t["number"] for t in first.trials} == set(range(9))
    full = _run(Curve(epochs=3), tmp_path, n_trials=9, workers=2)
    assert len(full.trials) == 9 and full.elapsed_s < 2  # nothing to do: no worker started
    more = _run(Curve(epochs=3, sleep=0.01), tmp_path, n_trials=12, workers=2)
    assert len(more.trials) == 12 and more.counts["complete"] == 12
    assert [t["params"] for t in more.trials[:9]] == [t["params"] for t in first.trials]


def test_budget_counts_every_state_and_respects_the_timeout(tmp_path):
    result = _run(Failing(), tmp_path, n_trials=5)
    assert sum(result.counts.values()) == 5
    timed = _run(Curve(epochs=2, sleep=0.05), tmp_path / "t", n_trials=1000, timeout=0.5, name="t")
    assert 1 <= len(timed.trials) < 20


def test_a_failing_objective_is_recorded_and_the_study_goes_on(tmp_path, capsys):
    result = _run(Failing(), tmp_path, n_trials=16)
    assert len(result.trials) == 16
    failed = [t for t in result.trials if t["state"] == "fail"]
    raised = [t for t in failed if t["params"]["x"] > 0.5]
    nans = [t for t in failed if t["params"]["x"] < 0.1]
    assert raised and len(raised) + len(nans) == len(failed) == result.counts["fail"]
    assert all(t["user_attrs"]["error"].startswith("ValueError: x too large") for t in raised)
    assert all("NaN" in t["user_attrs"]["error"] for t in nans)
    assert result.counts["complete"] == 16 - len(failed) and result.best_value <= 0.5
    err = capsys.readouterr().err
    assert f"trial {raised[0]['number']} failed: ValueError: x too large" in err


def test_wrong_number_of_values_fails_the_trial(tmp_path):
    result = _run(TwoObjectives(), tmp_path, n_trials=2)
    assert result.counts["fail"] == 2
    assert "returned 2 value(s) for 1 objective(s)" in result.trials[0]["user_attrs"]["error"]


def _leave_running(tmp_path, user_attrs: dict | None = None) -> int:
    handle = resolve_storage(None, tmp_path)
    study = optuna.load_study(study_name="s", storage=handle.storage)
    trial = study.ask()
    for k, v in (user_attrs or {}).items():
        trial.set_user_attr(k, v)
    trial.suggest_float("x", 0.0, 1.0)
    return trial.number


def test_stale_running_trials_are_failed_and_retried_once(tmp_path, capsys):
    _run(Quadratic(), tmp_path, n_trials=2)
    stale = _leave_running(tmp_path)  # as if its process had died
    retry_of_retry = _leave_running(tmp_path, {"retry_of": 0})
    study = optuna.load_study(study_name="s", storage=resolve_storage(None, tmp_path).storage)
    stale_x = study.trials[stale].params["x"]
    result = _run(Quadratic(), tmp_path, n_trials=7)
    assert len(result.trials) == 7 and result.counts["running"] == 0 and result.counts["waiting"] == 0
    for number in (stale, retry_of_retry):
        t = result.trial(number)
        assert t["state"] == "fail" and t["user_attrs"]["error"] == "interrupted: left running by an earlier run"
    retries = [t for t in result.trials if "retry_of" in t["user_attrs"] and t["number"] > retry_of_retry]
    assert len(retries) == 1 and retries[0]["user_attrs"]["retry_of"] == stale
    assert retries[0]["state"] == "complete" and retries[0]["params"]["x"] == stale_x
    assert "left running by an earlier run" in capsys.readouterr().err


def test_keyboard_interrupt_fails_and_enqueues_the_trial_then_reraises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run(InterruptAt(2), tmp_path, n_trials=5)
    after = load_study_result(str(tmp_path / "study.journal"), "s")
    assert after.counts == {"complete": 2, "pruned": 0, "fail": 1, "running": 0, "waiting": 1}
    interrupted, waiting = after.trial(2), after.trial(3)
    assert interrupted["user_attrs"]["error"] == "interrupted by user"
    assert waiting["state"] == "waiting" and waiting["user_attrs"]["retry_of"] == 2
    resumed = _run(InterruptAt(-1), tmp_path, n_trials=5)
    assert resumed.counts == {"complete": 4, "pruned": 0, "fail": 1, "running": 0, "waiting": 0}
    assert resumed.trial(3)["params"] == interrupted["params"] and resumed.trial(3)["state"] == "complete"


def test_a_dead_worker_is_reported_and_its_trial_retried_by_the_others(tmp_path, capsys):
    result = _run(DieOnce(str(tmp_path / "died")), tmp_path, n_trials=12, workers=2)
    assert "exited with code 3" in capsys.readouterr().err
    dead = [t for t in result.trials if t["state"] == "fail"]
    assert len(dead) == 1 and dead[0]["user_attrs"]["error"] == "interrupted: its worker process died"
    assert len(result.trials) == 12 and result.counts["complete"] == 11 and result.counts["waiting"] == 0
    retry = [t for t in result.trials if t["user_attrs"].get("retry_of") == dead[0]["number"]]
    assert len(retry) == 1 and retry[0]["params"] == dead[0]["params"]


def test_ctrl_c_in_the_parent_stops_workers_and_enqueues_their_trials(tmp_path):
    here = str(Path(honing_tune_toys.__file__).parent)
    script = honing_tune_toys.SCRIPT.format(here=here, run_dir=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    journal = tmp_path / "study.journal"
    deadline = time.time() + 40
    while time.time() < deadline:  # wait until both workers are running trials
        time.sleep(0.3)
        try:
            if journal.exists() and len(load_study_result(str(journal), "s").trials) >= 3:
                break
        except HoningError:  # the journal file exists, the study record is not written yet
            continue
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    after = load_study_result(str(journal), "s")
    assert after.counts["running"] == 0
    interrupted = [t for t in after.trials if t["state"] == "fail"]
    assert interrupted and all(t["user_attrs"]["error"] == "interrupted by user" for t in interrupted)
    retries = sorted(t["user_attrs"]["retry_of"] for t in after.trials if t["state"] == "waiting")
    assert retries == sorted(t["number"] for t in interrupted)


def test_choice_values_round_trip_decoded(tmp_path):
    space = SearchSpace([ChoiceParam("model.hidden", [[64], [128, 64]]), ChoiceParam("act", ["relu", None]),
                         IntParam("n", 1, 3)])
    result = _run(Echo(), tmp_path, space=space, n_trials=8)
    assert result.best_params["model.hidden"] in ([64], [128, 64])
    for t in result.trials:
        assert t["params"] == t["user_attrs"]["got"]  # what the objective saw is what is reported
        assert t["params"]["model.hidden"] in ([64], [128, 64]) and t["params"]["act"] in ("relu", None)
    loaded = load_study_result(result.storage_url, "s")
    assert loaded.best_params == result.best_params and loaded.trials == result.trials


GRID_SPACE = SearchSpace([
    ChoiceParam("opt", ["adam", "sgd"]),
    FloatParam("mom", 0.5, 0.9, step=0.2, when={"opt": "sgd"}),
    IntParam("layers", 1, 2),
    ChoiceParam("hidden", [[32], [64, 32]], when={"model.name": "mlp"}),
])


@pytest.mark.parametrize("workers", [1, 2])
def test_grid_sampler_visits_every_conditional_point_exactly_once(tmp_path, workers):
    base = {"model": {"name": "mlp"}}
    grid = GRID_SPACE.grid(base)
    assert len(grid) == (2 + 3 * 2) * 2
    sampler = create_sampler("grid", seed=0, space=GRID_SPACE)
    result = optimize(Echo(), study_name="g", storage=None, space=GRID_SPACE, sampler=sampler, n_trials=100,
                      base=base, workers=workers, run_dir=tmp_path, progress=False)
    visited = [t["params"] for t in result.trials]
    assert len(visited) == len(grid) == result.counts["complete"]
    key = lambda p: json.dumps(p, sort_keys=True)  # noqa: E731
    assert sorted(map(key, visited)) == sorted(map(key, grid))


def test_multi_objective_pareto_and_knee(tmp_path):
    with pytest.warns(UserWarning, match="several objectives"):
        result = _run(TwoObjectives(), tmp_path, n_trials=10, sampler="nsga2", directions=["minimize", "minimize"],
                      pruner=optuna.pruners.MedianPruner())
    assert result.pareto and result.best_params == {}
    values = [t["values"] for t in result.pareto]
    for v in values:  # nobody on the front is dominated by any complete trial
        assert not any(w[0] <= v[0] and w[1] <= v[1] and w != v for w in (t["values"] for t in result.trials))
    knee = select_from_pareto(result.pareto, ["minimize", "minimize"], rule="knee")
    assert knee in result.pareto


def test_select_from_pareto_on_a_known_front():
    front = [{"number": 0, "values": [0.90, 100]}, {"number": 1, "values": [0.95, 1000]},
             {"number": 2, "values": [0.80, 10]}, {"number": 3, "values": [0.94, 200]}]
    dirs = ["maximize", "minimize"]
    assert select_from_pareto(front, dirs, rule="best")["number"] == 1
    assert select_from_pareto(front, dirs, rule="best", metric_index=1)["number"] == 2
    assert select_from_pareto(front, dirs, rule="knee")["number"] == 3
    with pytest.raises(ConfigError, match="rule"):
        select_from_pareto(front, dirs, rule="middle")
    with pytest.raises(ConfigError, match="no trial"):
        select_from_pareto([], dirs)


def test_param_importances(tmp_path):
    space = SearchSpace([FloatParam("x", 0.0, 1.0), FloatParam("noise", 0.0, 0.01)])
    result = _run(Quadratic(), tmp_path, space=space, n_trials=12)
    imp = param_importances(result)
    assert set(imp) == {"x", "noise"} and imp["x"] > imp["noise"] and sum(imp.values()) == pytest.approx(1.0)
    one = _run(Quadratic(), tmp_path / "one", n_trials=4)
    assert param_importances(one.storage_url, "s") == {}


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="n_trials"):
        _run(Quadratic(), tmp_path, n_trials=0)
    with pytest.raises(ConfigError, match="workers"):
        optimize(Quadratic(), study_name="s", storage=None, space=X, n_trials=2, workers=0, run_dir=tmp_path)
    _run(Quadratic(), tmp_path, n_trials=1)
    with pytest.raises(ConfigError, match="has directions"):
        _run(Quadratic(), tmp_path, n_trials=2, directions=["minimize"])


def test_progress_bar_on_a_terminal_shows_the_best_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    optimize(Quadratic(), study_name="p", storage=None, space=X, sampler=create_sampler("random", seed=0, space=X),
             n_trials=4, run_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "4.0/4" in err and "best=" in err  # trials, with the running trial's share of its epochs
    optimize(Quadratic(), study_name="q", storage=None, space=X, sampler=create_sampler("random", seed=0, space=X),
             n_trials=4, run_dir=tmp_path, progress=False)
    assert "best=" not in capsys.readouterr().err


def test_same_seed_same_trials(tmp_path):
    space = SearchSpace([FloatParam("x", 0.0, 1.0), ChoiceParam("h", [[8], [16, 8]])])
    runs = [_run(Quadratic(), tmp_path / str(i), space=space, n_trials=8, sampler="tpe") for i in range(2)]
    assert [t["params"] for t in runs[0].trials] == [t["params"] for t in runs[1].trials]


def test_a_claim_holds_an_interrupt_even_when_other_threads_could_take_it():
    """A process-directed SIGINT goes to any thread that does not block it (a runtime's thread
    pool, here a sleeping thread); the claim must still finish before KeyboardInterrupt."""
    import threading

    from honing.tune._loop import _interrupts_deferred

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # time for the signal to land on whichever thread takes it
                steps.append("claimed")
            steps.append("after")
    finally:
        stop.set()
        other.join()
    assert steps == ["claimed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_while_a_trial_is_claimed_arrives_after_the_claim():
    from honing.tune._loop import _interrupts_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with _interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("claimed")  # still running: the signal is held
        steps.append("after")  # never reached: the held signal is delivered on leaving the block
    assert steps == ["claimed"]


def test_a_retry_the_spent_budget_will_not_run_is_marked_failed_not_left_waiting(tmp_path):
    _run(Quadratic(), tmp_path, n_trials=2)
    stale = _leave_running(tmp_path)  # 3 trials used: the budget of 3 is spent once it is failed
    result = _run(Quadratic(), tmp_path, n_trials=3)
    assert result.counts["waiting"] == 0 and result.counts["running"] == 0
    retry = [t for t in result.trials if t["user_attrs"].get("retry_of") == stale]
    assert len(retry) == 1 and retry[0]["state"] == "fail"
    assert retry[0]["user_attrs"]["error"] == "not retried: the trial budget was spent"


def test_the_search_bar_moves_with_the_epochs_of_the_running_trial(monkeypatch):
    """On a terminal the trial bar advances per epoch (a long first trial no longer sits at 0%)."""
    import io
    from types import SimpleNamespace

    import optuna

    from honing.tune._optimize import _Progress

    monkeypatch.setattr("sys.stderr", io.StringIO())
    study = optuna.create_study(direction="maximize")
    study.ask()  # trial 0, running
    job = SimpleNamespace(n_trials=4, directions=("maximize",), base={"training": {"epochs": 10}}, study_name="s")
    progress = _Progress(study, job, "bar")
    progress.epoch(0, 5)
    assert progress.bar.n == pytest.approx(0.5)
    assert "#0 epoch 5/10" in str(progress.bar.postfix)
    progress.close()


def test_a_search_in_a_log_prints_one_line_per_finished_trial(monkeypatch, capsys):
    from types import SimpleNamespace

    import optuna

    from honing.tune._optimize import _Progress

    study = optuna.create_study(direction="minimize")
    job = SimpleNamespace(n_trials=3, directions=("minimize",), base={}, study_name="s")
    progress = _Progress(study, job, "lines")
    for value in (0.5, 0.2):
        trial = study.ask()
        study.tell(trial, value)
        progress.refresh()
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    progress.refresh()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("honing: trial 0 complete: 0.5; best 0.5 (trial 0); 1/3 trials;")
    assert lines[1].startswith("honing: trial 1 complete: 0.2; best 0.2 (trial 1); 2/3 trials;")
    assert lines[2].startswith("honing: trial 2 pruned") and len(lines) == 3
