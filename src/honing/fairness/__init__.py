"""Fairness audits: a model's metrics per group and the gaps between groups (a classifier's
rates, a regression model's errors).

```python
from honing.fairness import fairness_audit

audit = fairness_audit(y_true, y_pred, {"sex": sex_of_each_row}, class_names=["no", "yes"])
audit["columns"]["sex"]["demographic_parity_difference"], audit["columns"]["sex"]["groups"]
errors = regression_audit(y_true, y_pred, {"sex": sex_of_each_row})  # in the target's units
errors["columns"]["sex"]["mae_difference"], errors["columns"]["sex"]["mean_error_difference"]
```

In a run, ``evaluate.groups: [column, ...]`` audits the final model on the test rows (the
``fairness`` stage): results.json, the report and the model card. ``evaluate.group_inputs:
false`` keeps the group columns out of the model's inputs (audited, never learned from).
Per-group metrics come from Fairlearn's ``MetricFrame`` (the ``fairness`` extra).
"""

from __future__ import annotations

from honing.fairness._audit import fairness_audit, regression_audit

__all__ = ["fairness_audit", "regression_audit"]
