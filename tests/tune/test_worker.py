"""`honing worker` commands joining a study that `honing run` leads, in a real PostgreSQL server
(started on 127.0.0.1 by the fixture, see _postgres.py): separate processes, as on several
machines; a worker killed mid-trial; the server restarted mid-study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

from honing import ConfigError, HoningError
from honing.pipeline import work
from honing.tune import load_study_result

RECIPE = """\
name: {name}
seed: 0
data:
  source: sklearn:iris
  val_size: 0.2
  test_size: 0.2
model:
  name: mlp
  hidden: [16]
training:
  epochs: {epochs}
  batch_size: 16
  early_stopping: null
  optimizer: {{name: adam, lr: 0.01}}
tune:
  n_trials: {n_trials}
  sampler: random
  pruner: none
  final: retrain
  warm_start: false
  metric: val_accuracy
  space:
    training.optimizer.lr: {{float: [1.0e-3, 1.0e-1], log: true}}
output:
  report: false
"""
# a dead worker's trial is failed after two missed beats: 4 s here, not two minutes
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HONING_HEARTBEAT_S": "2"}


def _recipe(tmp_path: Path, name: str, *, epochs: int, n_trials: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RECIPE.format(name=name, epochs=epochs, n_trials=n_trials))
    return path


def _honing(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "honing.cli", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=ENV)


def _worker(url: str, name: str, log: Path) -> subprocess.Popen:
    return _honing("worker", "--storage", url, "--study", name, "--wait", "120", log=log)


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> None:
    codes = [p.wait(timeout=timeout) for p in procs]
    assert codes == [0] * len(procs), "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)


def _until(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except HoningError:  # the study is not created yet
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_a_leader_and_two_worker_commands_spend_exactly_the_budget(postgres_url, tmp_path):
    recipe = _recipe(tmp_path, "cluster", epochs=20, n_trials=12)
    logs = [tmp_path / f"{n}.log" for n in ("w1", "w2", "lead")]
    workers = [_worker(postgres_url, "cluster", logs[i]) for i in range(2)]  # before the leader: they wait for it
    lead = _honing("run", str(recipe), "--storage", postgres_url, "--out", str(tmp_path / "out"), "--quiet",
                   log=logs[2])
    _wait([*workers, lead], logs)
    study = load_study_result(postgres_url, "cluster")
    assert len(study.trials) == 12 and study.counts["complete"] == 12 and study.counts["running"] == 0
    assert (tmp_path / "out" / "results.json").is_file()
    by_command = {t["user_attrs"].get("command") for t in study.trials} - {None}
    assert len(by_command) >= 1  # trials ran in the worker commands (the leader's own are untagged)
    for log in logs[:2]:
        assert "honing worker: study 'cluster'" in log.read_text() and "(budget 12)" in log.read_text()
    ran = [int(line.split("trials run here: ")[1].split(" complete")[0]) for log in logs[:2]
           for line in log.read_text().splitlines() if "trials run here: " in line and " complete" in line]
    led = sum(1 for t in study.trials if "command" not in t["user_attrs"])
    assert sum(ran) + led == 12  # each worker counts exactly the trials it ran
    import json

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["search"]["workers"] == {"trials": 12 - led, "commands": len(by_command)}


def test_a_worker_killed_mid_trial_is_found_by_heartbeat_and_its_trial_retried(postgres_url, tmp_path):
    recipe = _recipe(tmp_path, "killed", epochs=60, n_trials=10)  # each trial: 5 folds x 60 epochs, seconds
    logs = [tmp_path / f"{n}.log" for n in ("victim", "w2", "lead")]
    victim = _worker(postgres_url, "killed", logs[0])
    other = _worker(postgres_url, "killed", logs[1])
    lead = _honing("run", str(recipe), "--storage", postgres_url, "--out", str(tmp_path / "out"), "--quiet",
                   log=logs[2])
    owner = f"{os.uname().nodename}:{victim.pid}"

    def victim_is_training() -> bool:
        trials = load_study_result(postgres_url, "killed").trials
        return any(t["state"] == "running" and t["user_attrs"].get("worker") == owner for t in trials)

    _until(victim_is_training, what="the victim worker to run a trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    _wait([other, lead], logs[1:])
    study = load_study_result(postgres_url, "killed")
    assert len(study.trials) == 10 and study.counts["running"] == 0 and study.counts["waiting"] == 0
    dead = [t for t in study.trials if t["state"] == "fail"]
    assert len(dead) == 1 and dead[0]["user_attrs"]["worker"] == owner
    # found by a live worker at its next claim: the process is gone (this machine), or its
    # heartbeats stopped (another machine), or, for a worker that started later, left running
    assert dead[0]["user_attrs"]["error"] in ("interrupted: its worker process died",
                                              "interrupted: its worker stopped sending heartbeats",
                                              "interrupted: left running by an earlier run")
    retry = [t for t in study.trials if t["user_attrs"].get("retry_of") == dead[0]["number"]]
    assert len(retry) == 1 and retry[0]["state"] == "complete" and retry[0]["params"] == dead[0]["params"]


def test_a_postgres_restart_mid_study_loses_no_trial(postgres_server, tmp_path):
    url = postgres_server.new_database()
    recipe = _recipe(tmp_path, "restarted", epochs=20, n_trials=12)
    logs = [tmp_path / f"{n}.log" for n in ("w1", "lead")]
    worker = _worker(url, "restarted", logs[0])
    lead = _honing("run", str(recipe), "--storage", url, "--out", str(tmp_path / "out"), "--quiet", log=logs[1])
    _until(lambda: load_study_result(url, "restarted").counts["complete"] >= 3, what="3 finished trials")
    postgres_server.restart()
    _wait([worker, lead], logs)
    study = load_study_result(url, "restarted")
    assert len(study.trials) == 12 and study.counts["complete"] == 12, study.counts
    assert "lost the storage connection" in "".join(log.read_text() for log in logs)


def test_worker_errors_are_clear(postgres_url, tmp_path):
    with pytest.raises(HoningError, match=r"no study 'nope' .* after waiting 0 s: start the leader first"):
        work(storage=postgres_url, study="nope", wait=0)
    with pytest.raises(ConfigError, match="--study NAME"):
        work(storage=postgres_url)
    from honing.cli import main

    assert main(["worker", "--storage", postgres_url, "--study", "nope", "--wait", "0"]) == 1
    recipe = _recipe(tmp_path, "mismatch", epochs=2, n_trials=2)
    from honing.pipeline import run

    run(str(recipe), out=tmp_path / "out", storage=postgres_url, progress=False)
    other = _recipe(tmp_path / "..", "mismatch", epochs=5, n_trials=2)
    with pytest.raises(ConfigError, match=r"differs from the one study 'mismatch' runs \(sections changed: training\)"):
        work(str(other), storage=postgres_url, wait=0)
    done = work(str(recipe), storage=postgres_url, wait=0, progress=False)  # the budget is spent: nothing to run
    assert done.ran == {"complete": 0, "pruned": 0, "fail": 0} and done.counts["complete"] == 2
    journal = tmp_path / "j" / "s.journal"
    run(str(recipe).replace("mismatch", "mismatch"), out=tmp_path / "jout", storage=str(journal), progress=False)
    with pytest.raises(ConfigError, match="lock file in the leader's run folder"):
        work(storage=str(journal), study="mismatch", out=tmp_path / "elsewhere", wait=0)


class FailedElsewhere:
    """Trial 0 is failed 'by another worker' while it runs (as when its heartbeats came late)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, params, reporter):
        if reporter.number == 0:
            import optuna
            from optuna.trial import TrialState

            from honing.tune import _compat, resolve_storage
            from honing.tune._loop import STOPPED_BEATING
            from honing.tune._study import enqueue_retry

            study = optuna.load_study(study_name="late", storage=resolve_storage(self.url, ".").storage)
            (t,) = study.get_trials(states=(TrialState.RUNNING,))
            _compat.set_user_attr(study, t, "error", STOPPED_BEATING)
            _compat.set_state(study, t, TrialState.FAIL)
            enqueue_retry(study, t)
        return params["x"]


def test_a_trial_failed_elsewhere_while_it_ran_keeps_that_end_and_the_loop_goes_on(tmp_path, capsys):
    from honing.tune import FloatParam, SearchSpace, create_sampler, optimize

    url = f"sqlite:///{tmp_path / 'late.db'}"
    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    result = optimize(FailedElsewhere(url), study_name="late", storage=url, space=space, n_trials=4, run_dir=tmp_path,
                      sampler=create_sampler("random", seed=0, space=space, n_trials=4), progress=False)
    assert result.counts["fail"] == 1 and result.counts["complete"] == 3 and len(result.trials) == 4
    assert result.trial(0)["user_attrs"]["error"] == "interrupted: its worker stopped sending heartbeats"
    assert result.trial(1)["params"] == result.trial(0)["params"]  # its retry, with the same parameters
    assert "trial 0 finished here after another worker had failed it" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_silent_trial_of_another_machine_is_failed_by_heartbeat_and_retried(tmp_path, monkeypatch):
    """A RUNNING trial whose worker is on another host (its pid cannot be checked here) and whose
    heartbeats stopped: the next claim fails it with the reason and runs its retry."""
    import optuna

    from honing.tune import FloatParam, SearchSpace, _compat, create_sampler, optimize, resolve_storage

    monkeypatch.setenv("HONING_HEARTBEAT_S", "1")
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    sampler = create_sampler("random", seed=0, space=space, n_trials=3)
    optimize(lambda p, r: p["x"], study_name="beat", storage=url, space=space, n_trials=1, run_dir=tmp_path,
             sampler=sampler, progress=False)
    study = optuna.load_study(study_name="beat", storage=resolve_storage(url, tmp_path).storage)
    trial = study.ask()
    trial.set_user_attr("worker", "another-machine:4242")
    trial.suggest_float("x", 0.0, 1.0)
    with _compat.heartbeat(study, trial):  # it beat once, then went silent
        pass
    deadline = time.time() + 30
    while not _compat.stale_trial_ids(study) and time.time() < deadline:  # silent for longer than two beats
        time.sleep(0.2)
    result = optimize(lambda p, r: p["x"], study_name="beat", storage=url, space=space, n_trials=4, run_dir=tmp_path,
                      sampler=create_sampler("random", seed=0, space=space, n_trials=4), progress=False)
    silent = result.trial(trial.number)
    assert silent["state"] == "fail" and silent["user_attrs"]["error"] == "interrupted: its worker stopped sending heartbeats"
    retry = [t for t in result.trials if t["user_attrs"].get("retry_of") == trial.number]
    assert len(retry) == 1 and retry[0]["state"] == "complete" and retry[0]["params"] == silent["params"]
    assert len(result.trials) == 4 and result.counts["running"] == 0
