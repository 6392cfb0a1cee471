"""Optimizers, parameter groups, learning-rate schedules and the LR range test.

```python
opt = create_optimizer(model, "adamw", lr=1e-3, weight_decay=1e-2, layer_decay=0.75)
sched = create_schedule(opt, "cosine", epochs=20, steps_per_epoch=50, warmup_steps=100)
result = lr_find(model, opt, loss_fn, x, y)
```
"""

from __future__ import annotations

from honing.optim._admm import ADMM
from honing.optim._bpag import BPAG
from honing.optim._factory import OPTIMIZERS, OptimInfo, create_optimizer, get_optimizer_info, list_optimizers
from honing.optim._lr_find import LRFinderResult, lr_find
from honing.optim._param_groups import param_groups_layer_decay, param_groups_weight_decay
from honing.optim._proximal import ProximalGradient
from honing.optim._schedule import ReduceOnPlateau, Schedule, ScheduleTiming
from honing.optim._schedules import SCHEDULES, create_schedule, list_schedules

__all__ = [
    "ADMM",
    "BPAG",
    "LRFinderResult",
    "OPTIMIZERS",
    "OptimInfo",
    "ProximalGradient",
    "ReduceOnPlateau",
    "SCHEDULES",
    "Schedule",
    "ScheduleTiming",
    "create_optimizer",
    "create_schedule",
    "get_optimizer_info",
    "list_optimizers",
    "list_schedules",
    "lr_find",
    "param_groups_layer_decay",
    "param_groups_weight_decay",
]
