"""The ``grid`` sampler: Optuna's brute force over the define-by-run (conditional) space.

Imported only by ``create_sampler("grid")`` (it imports optuna at module level, and must be
a module-level class so that it pickles to worker processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from optuna.samplers import BruteForceSampler

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState


class GridSearchSampler(BruteForceSampler):
    """Visits every point of the conditional grid once. Parameters are suggested under the
    study lock, so running trials are seen and never repeated; ``optimize`` stops when every
    grid point is claimed (Optuna's own stop only works inside ``Study.optimize``)."""

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        return None
