"""Ensembles of the models a search already trained, and their calibration.

```python
from honing import ensemble

sel = ensemble.greedy_selection([p1, p2, p3], y_val, task="classification", rounds=25)
model = ensemble.EnsembleModel([m1, m2, m3], task="classification", weights=sel.weights)
t = ensemble.fit_temperature(model(x_val), y_val)           # temperature scaling
ece = ensemble.expected_calibration_error(model(x_test).softmax(-1), y_test)
```

- ``greedy_selection``: Caruana's greedy selection with replacement on validation predictions.
- ``fit_stacker`` / ``cross_fitted_predictions``: a linear meta-learner on out-of-sample
  predictions (stacking), scored without ever seeing a row's own prediction.
- ``EnsembleModel``: the members and their weights (or head) as one ``nn.Module``; saved as a
  model folder of format ``ensemble`` (``load_ensemble``), it loads, evaluates, serves and
  exports like any model.
- ``expected_calibration_error``, ``fit_temperature``: calibration of any classifier.
- ``boost``: SAMME over small networks (classification) or gradient boosting on residuals
  (regression), as one ``BoostedModel``.
- ``SnapshotEnsemble``, ``StochasticWeightAveraging``: Trainer callbacks that make an ensemble
  (cosine cycles, a snapshot at each cycle's end) or one averaged model from one training run.

In a run, the recipe's ``ensemble:`` section makes the ``ensemble`` stage (docs/ensemble.md).
"""

from __future__ import annotations

from honing.ensemble._boost import BoostedModel, BoostResult, boost
from honing.ensemble._calibrate import checked_temperature, expected_calibration_error, fit_temperature
from honing.ensemble._folds import fit_affine, imputed_gap
from honing.ensemble._one_run import SnapshotEnsemble, StochasticWeightAveraging
from honing.ensemble._model import Affine, EnsembleModel, Member, bag, folder_info, load_ensemble
from honing.ensemble._select import Selection, as_probabilities, greedy_selection, prediction_loss
from honing.ensemble._stack import cross_fitted_predictions, fit_stacker, head_predictions, stack_features

__all__ = [
    "Affine",
    "BoostResult",
    "BoostedModel",
    "EnsembleModel",
    "Member",
    "Selection",
    "SnapshotEnsemble",
    "StochasticWeightAveraging",
    "as_probabilities",
    "bag",
    "boost",
    "checked_temperature",
    "cross_fitted_predictions",
    "expected_calibration_error",
    "fit_affine",
    "fit_stacker",
    "fit_temperature",
    "folder_info",
    "greedy_selection",
    "head_predictions",
    "imputed_gap",
    "load_ensemble",
    "prediction_loss",
    "stack_features",
]
