"""pruner: auto: the rule chosen by the budget, and no decision on a rung fewer than 3 other
trials have reached."""

from __future__ import annotations

import optuna
import pytest

from honing.recipe import parse_recipe
from honing.tune import create_pruner
from honing.tune._compat import frozen
from honing.tune._pruners import AutoPruner, ThinRungGuard

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_budget_chooses_the_rule():
    assert isinstance(create_pruner("auto", max_epochs=3, n_trials=50).inner, optuna.pruners.NopPruner)
    for n in (4, 14):
        small = create_pruner("auto", max_epochs=12, n_trials=n)
        assert isinstance(small.inner, optuna.pruners.MedianPruner) and small.choice.startswith("median")
    for n in (20, None):  # a trial budget of 20 or more, or a time budget
        big = create_pruner("auto", max_epochs=30, n_trials=n)
        assert isinstance(big.inner, ThinRungGuard) and "first rung at epoch 4" in big.choice
    recipe = parse_recipe({"name": "r", "data": {"source": "sklearn:iris"}, "model": {"name": "mlp"},
                           "tune": {"n_trials": 4, "space": {"training.optimizer.lr": {"float": [1e-3, 1e-1]}}}})
    assert recipe.tune.pruner == "auto"


def _trial_reporting(study: optuna.Study, pruner: optuna.pruners.BasePruner, curve: list[float]) -> bool:
    """Ask a trial, report ``curve`` epoch by epoch; True when the pruner stops it."""
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if pruner.prune(study, frozen(study, trial)):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, curve[-1])
    return False


@pytest.mark.parametrize("guarded", [False, True])
def test_no_trial_stops_on_a_rung_fewer_than_three_others_reached(guarded):
    sh = optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    pruner = ThinRungGuard(sh, 3) if guarded else sh
    study = optuna.create_study(direction="maximize", pruner=pruner)
    # each trial a little worse than the one before: plain successive halving stops the second
    # and third at their first rung (2 or 3 trials there: each must beat the best one)
    stopped = [_trial_reporting(study, pruner, [0.5 - 0.01 * i] * 6) for i in range(6)]
    if guarded:
        assert stopped[:3] == [False, False, False] and any(stopped[3:])
    else:
        assert stopped[1] and stopped[2]


def test_auto_pruner_pickles_for_worker_processes():
    import pickle

    again = pickle.loads(pickle.dumps(AutoPruner(max_epochs=20, n_trials=30)))
    assert again.choice.startswith("successive halving") and again.inner.min_peers == 3
