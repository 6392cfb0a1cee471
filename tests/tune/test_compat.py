"""One test per private Optuna API honing uses (honing/tune/_compat.py): an Optuna upgrade
that moves one of them fails here, by name."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from honing.tune import _compat

pytestmark = [pytest.mark.filterwarnings("ignore:Heartbeat of storage"),
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


@pytest.fixture()
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=60)
    return optuna.create_study(study_name="s", storage=storage)


def test_storage_and_trial_id(study) -> None:
    trial = study.ask()
    assert _compat.storage_of(study) is study._storage
    assert isinstance(_compat.trial_id(trial), int)
    assert _compat.frozen(study, trial).number == trial.number and _compat.frozen(study, trial).state == TrialState.RUNNING


def test_user_attr_and_state_on_another_trial(study) -> None:
    study.enqueue_trial({})  # stored WAITING
    (t,) = study.get_trials(states=(TrialState.WAITING,))
    _compat.set_user_attr(study, t, "error", "not retried")
    _compat.set_state(study, t, TrialState.FAIL)
    (after,) = study.get_trials()
    assert after.state == TrialState.FAIL and after.user_attrs["error"] == "not retried"


def test_heartbeat(study, tmp_path) -> None:
    assert _compat.heartbeat_enabled(study)
    plain = optuna.create_study(storage=f"sqlite:///{tmp_path / 'plain.db'}")
    assert not _compat.heartbeat_enabled(plain)
    trial = study.ask()
    with _compat.heartbeat(study, trial):  # the thread starts and stops with the block
        assert _compat.frozen(study, trial).state == TrialState.RUNNING


def test_stale_trial_ids_and_cached_storage(tmp_path) -> None:
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'beat.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="b", storage=_compat.cached_storage(rdb))
    trial = study.ask()
    with _compat.heartbeat(study, trial):
        assert _compat.stale_trial_ids(study) == []
    import time

    time.sleep(2.5)  # no beat for longer than the grace period
    assert _compat.stale_trial_ids(study) == [_compat.trial_id(trial)]


def test_optimize_runs_its_trials_through_an_executor(tmp_path) -> None:
    """The executor seam: a custom one is handed the study and the job, and its trials count."""
    from honing.tune import FloatParam, SearchSpace, list_executors, optimize
    from honing.tune._loop import run_loop

    class Counting:
        def __init__(self) -> None:
            self.calls = []

        def run(self, study, job, workers, show):
            self.calls.append((workers, job.n_trials))
            run_loop(study, job)

    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    executor = Counting()
    result = optimize(_square, study_name="e", storage=None, space=space, directions="minimize",
                      sampler="random", n_trials=3, progress=False, run_dir=tmp_path, executor=executor)
    assert executor.calls == [(1, 3)] and result.counts["complete"] == 3
    assert list_executors() == ["inline", "processes", "ray"]
    with pytest.raises(Exception, match="unknown executor 'dask'"):
        optimize(_square, study_name="f", storage=None, space=space, sampler="random", n_trials=1,
                 progress=False, run_dir=tmp_path, executor="dask")


def _square(params, reporter):
    return (params["x"] - 0.3) ** 2
