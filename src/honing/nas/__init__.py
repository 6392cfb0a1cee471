"""Neural architecture search: spaces of decisions, strategies, and a search on any objective.

```python
from honing import nas

space = nas.mobile_space(blocks=5)                         # op, kernel, expansion, width, SE per layer
def objective(arch):                                       # any function: train, or look up a benchmark
    model = create_model("mobilenet", data=data, blocks=nas.mobile_blocks(arch))
    return accuracy_after_training(model), count_parameters(model)
result = nas.search(space, objective, strategy="evolution", budget=100, seed=0,
                    directions=["maximize", "minimize"], journal="nas.jsonl")
result.pareto                                              # the accuracy / size front
```

Strategies: ``random``, ``evolution`` (regularized, aging), ``local`` (local search),
``reinforce`` (a REINFORCE controller with a baseline), ``tpe`` (Optuna). Networks are plain
``nn.Module``s built from the architecture (``mobilenet`` blocks): no graph tracing.
"""

from __future__ import annotations

from honing.nas._search import NasResult, read_journal, search
from honing.nas._space import MOBILE_STRIDES, ArchSpace, cell_ops, cell_space, mobile_blocks, mobile_space
from honing.nas._strategies import (
    STRATEGIES,
    LocalSearch,
    RandomSearch,
    RegularizedEvolution,
    Reinforce,
    TPE,
    create_strategy,
    pareto_ranks,
)

__all__ = [
    "MOBILE_STRIDES",
    "STRATEGIES",
    "TPE",
    "ArchSpace",
    "LocalSearch",
    "NasResult",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "cell_ops",
    "cell_space",
    "create_strategy",
    "mobile_blocks",
    "mobile_space",
    "pareto_ranks",
    "read_journal",
    "search",
]
