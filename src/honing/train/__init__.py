"""Training: the Trainer loop, losses, metrics, callbacks and checkpoints.

```python
trainer = Trainer(model, opt, loss="cross_entropy", task="classification",
                  callbacks=[EarlyStopping(monitor="val_accuracy", patience=5)],
                  config=TrainConfig(epochs=20, batch_size=64, seed=0))
result = trainer.fit(train, val, checkpoint_dir="runs/a", resume=True)
trainer.evaluate(test)   # {"loss": ..., "accuracy": ..., ...}
```
"""

from __future__ import annotations

from honing.train._callbacks import Callback, EarlyStopping, LambdaCallback, StoppingState, stopping_decision
from honing.train._checkpoint import (
    INDEX_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    has_checkpoint,
    load_checkpoint,
    load_checkpoint_weights,
    read_index,
    save_checkpoint,
)
from honing.train._distributed import DistributedError, DistributedFit, DistributedStep, SyncStop, fit_distributed
from honing.train._config import PRECISIONS, FitResult, TrainConfig, resolve_precision
from honing.train._losses import LOSSES, create_loss, default_loss, list_losses
from honing.train._metrics import METRICS, default_metrics, list_metrics, resolve_metrics, resolve_mode
from honing.train._protocols import Augment, Reporter, Schedule, SplitLike, report_epoch
from honing.train._steps import AmpStep, ClosureStep, StandardStep, StepPolicy, default_step
from honing.train._trainer import Trainer

__all__ = [
    "DistributedError",
    "DistributedFit",
    "DistributedStep",
    "SyncStop",
    "fit_distributed",
    "INDEX_FILE",
    "LOSSES",
    "METRICS",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "AmpStep",
    "Augment",
    "Callback",
    "ClosureStep",
    "EarlyStopping",
    "FitResult",
    "LambdaCallback",
    "Reporter",
    "Schedule",
    "SplitLike",
    "StandardStep",
    "StepPolicy",
    "StoppingState",
    "PRECISIONS",
    "TrainConfig",
    "Trainer",
    "create_loss",
    "default_loss",
    "default_step",
    "default_metrics",
    "has_checkpoint",
    "list_losses",
    "list_metrics",
    "load_checkpoint",
    "load_checkpoint_weights",
    "read_index",
    "resolve_metrics",
    "resolve_mode",
    "save_checkpoint",
    "stopping_decision",
    "report_epoch",
    "resolve_precision",
]
