"""Adversarial robustness: attacks, robust evaluation, adversarial training, corruptions.

```python
from honing import robust

space = robust.InputSpace.from_preprocessor(data.preprocessor, data.train.x)   # epsilon in pixel units
report = robust.evaluate_robustness(model, x_test, y_test, epsilons=[0.05, 0.1], space=space)
report["accuracy"]["pgd"]["0.1"], report["checks"]
step = robust.AdversarialStep("trades", epsilon=0.1, space=space)              # Trainer(..., step=step)
```

- Attacks (``fgsm``, ``pgd`` L-inf/L2 with restarts, ``apgd`` (APGD-CE), black-box ``square``)
  take and return model inputs, with epsilon in the data's own units (``InputSpace``: [0, 1]
  pixel units for images) and the data's range respected.
- ``evaluate_robustness``: clean vs robust accuracy over epsilons, corruptions, and sanity
  checks (accuracy falls with epsilon and to 0 unbounded, PGD's loss rises, the black-box
  attack is not stronger than the white-box ones: else gradient masking is likely).
- ``AdversarialStep``: PGD-AT, TRADES and fast FGSM training as a Trainer step policy.

In a run: ``training.adversarial`` trains adversarially, the ``robust:`` section evaluates the
final model (the ``robust`` stage), and the ``robustness`` objective lets a study trade accuracy
for robust accuracy (docs/robust.md).
"""

from __future__ import annotations

from honing.robust._attacks import ATTACKS, AttackResult, apgd, fgsm, pgd, square
from honing.robust._corrupt import CORRUPTIONS, corrupt
from honing.robust._evaluate import evaluate_robustness
from honing.robust._space import InputSpace
from honing.robust._train import ADVERSARIAL_METHODS, AdversarialStep

__all__ = [
    "ADVERSARIAL_METHODS",
    "ATTACKS",
    "CORRUPTIONS",
    "AdversarialStep",
    "AttackResult",
    "InputSpace",
    "apgd",
    "corrupt",
    "evaluate_robustness",
    "fgsm",
    "pgd",
    "square",
]
