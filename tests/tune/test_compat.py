"""One test per private Optuna API honing uses (honing/tune/_compat.py): an Optuna upgrade
that moves one of them fails here, by name."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from honing.tune import _compat


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


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_heartbeat(study, tmp_path) -> None:
    assert _compat.heartbeat_enabled(study)
    plain = optuna.create_study(storage=f"sqlite:///{tmp_path / 'plain.db'}")
    assert not _compat.heartbeat_enabled(plain)
    trial = study.ask()
    with _compat.heartbeat(study, trial):  # the thread starts and stops with the block
        assert _compat.frozen(study, trial).state == TrialState.RUNNING
