"""``pruner: auto``: early stopping chosen by the budget, and never on a thin rung.

Successive halving stops a trial at a rung unless it is in the best third of the trials that
reached that rung so far. Early in a study, or with parallel workers that reach a rung
together, "so far" is one or two trials, and a trial must beat every one of them: on a 14-trial
budget with 2 workers it stopped 12 of 14 trials (issue 14), and with 4 trials it stops 2-3 at
their first rung, leaving the report's importances to rest on 1-2 finished trials.

``AutoPruner`` picks by the budget:

==========================  ==============================================================
budget                      early stopping
==========================  ==============================================================
3 epochs or fewer           none (nothing to gain)
fewer than 20 trials        the median rule: stop a trial below the median of the others at
                            the same epoch, after half the trials (at least 2) have finished
                            and never before a third of the epochs
20 trials or more, or a     successive halving (first rung at ~1/9 of the epochs, keep the
time budget                 best third), each decision taken only once at least
                            ``min_peers`` other trials have reported at that epoch
==========================  ==============================================================
"""

from __future__ import annotations

import math
import optuna
from optuna.pruners import BasePruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.trial import TrialState

from honing._core import check_int

__all__ = ["AutoPruner", "SMALL_BUDGET", "ThinRungGuard"]

# below this many trials successive halving leaves too few finished trials to choose from and
# to rank parameters by (14 trials, 2 workers: 4-5 finished; the median rule: see docs/search.md)
SMALL_BUDGET = 20

_REPORTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class ThinRungGuard(BasePruner):
    """``inner``'s decision, except that no trial is stopped at an epoch fewer than
    ``min_peers`` other trials have reported (it goes on, and is judged at the next rung)."""

    def __init__(self, inner: BasePruner, min_peers: int = 3) -> None:
        self.inner = inner
        self.min_peers = check_int("min_peers", min_peers, low=0)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        peers = sum(1 for t in study.get_trials(deepcopy=False, states=_REPORTED)
                    if t.number != trial.number and step in t.intermediate_values)
        if peers < self.min_peers:
            return False
        return self.inner.prune(study, trial)


class AutoPruner(BasePruner):
    """Early stopping chosen by the budget (see the module docstring); ``choice`` says which."""

    def __init__(self, max_epochs: int, n_trials: int | None = None, min_peers: int = 3) -> None:
        check_int("max_epochs", max_epochs, low=1)
        self.max_epochs, self.n_trials = max_epochs, n_trials
        inner: BasePruner
        if max_epochs <= 3:
            inner, self.choice = NopPruner(), "none (3 epochs or fewer)"
        elif n_trials is not None and n_trials < SMALL_BUDGET:
            startup = max(2, n_trials // 2)
            warmup = max(1, math.ceil(max_epochs / 3))
            inner = MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
            self.choice = (f"median (fewer than {SMALL_BUDGET} trials: after {startup} finished trials, from epoch "
                           f"{warmup + 1})")
        else:
            first = max(2 if max_epochs >= 4 else 1, math.ceil(max_epochs / 9))
            inner = ThinRungGuard(SuccessiveHalvingPruner(min_resource=first, reduction_factor=3), min_peers)
            self.choice = (f"successive halving (first rung at epoch {first}, keep the best third; a rung decides "
                           f"once {min_peers} other trials have reached it)")
        self.inner = inner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return self.inner.prune(study, trial)

    def __repr__(self) -> str:
        return f"AutoPruner({self.choice})"

