"""Optimizers from outside Optuna, driven by ask and tell over a ConfigSpace, for the sampler
suite: SMAC3 (its hyperparameter-optimization facade: a random forest with log-EI, 2.4.1),
and HEBO (0.3.6).

Each wraps the library behind ``ask() -> dict`` and ``tell(value)`` (the value in the task's
direction); the suite enqueues the asked values into the Optuna study so that its bookkeeping
(incumbent, regret, time) is the same for every contender. Installed in .venv-hpo by
``bench/run_hpo.sh --external`` (see bench/README.md for how, and what did not install).
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

EXTERNAL = ("smac", "hebo")  # DEHB asserts max fidelity > min fidelity: see bench/multifidelity.py


def make_external(name: str, space: Any, seed: int, n_trials: int, minimize: bool) -> Any:
    return {"smac": _Smac, "hebo": _Hebo}[name](space, seed, n_trials, minimize)


def plain(config: Any) -> dict[str, Any]:
    """A ConfigSpace configuration as plain Python values (numpy scalars made int/float/str)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in dict(config).items()}


class _Smac:
    def __init__(self, space: Any, seed: int, n_trials: int, minimize: bool) -> None:
        from smac import HyperparameterOptimizationFacade, Scenario

        self.sign = 1.0 if minimize else -1.0
        self._dir = tempfile.TemporaryDirectory()
        scenario = Scenario(space, deterministic=True, n_trials=n_trials, seed=seed, output_directory=self._dir.name)
        self.smac = HyperparameterOptimizationFacade(scenario, lambda config, seed=0: 0.0, overwrite=True,
                                                     logging_level=40)
        self._info: Any = None

    def ask(self) -> dict[str, Any]:
        self._info = self.smac.ask()
        return plain(self._info.config)

    def tell(self, value: float) -> None:
        from smac.runhistory.dataclasses import TrialValue

        self.smac.tell(self._info, TrialValue(cost=self.sign * value))


class _Hebo:
    def __init__(self, space: Any, seed: int, n_trials: int, minimize: bool) -> None:
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        if space.conditions:
            raise ValueError("HEBO has no conditional spaces")
        self.sign = 1.0 if minimize else -1.0
        rows = []
        for hp in space.values():
            kind = type(hp).__name__
            if kind == "CategoricalHyperparameter":
                rows.append({"name": hp.name, "type": "cat", "categories": list(hp.choices)})
            elif "Integer" in kind:
                rows.append({"name": hp.name, "type": "int", "lb": int(hp.lower), "ub": int(hp.upper)})
            elif hp.log:
                rows.append({"name": hp.name, "type": "pow", "lb": float(hp.lower), "ub": float(hp.upper)})
            else:
                rows.append({"name": hp.name, "type": "num", "lb": float(hp.lower), "ub": float(hp.upper)})
        np.random.seed(seed)
        import torch

        torch.manual_seed(seed)
        self.opt = HEBO(DesignSpace().parse(rows), scramble_seed=seed)
        self._rec: Any = None

    def ask(self) -> dict[str, Any]:
        self._rec = self.opt.suggest(n_suggestions=1)
        return plain(self._rec.iloc[0].to_dict())

    def tell(self, value: float) -> None:
        self.opt.observe(self._rec, np.array([[self.sign * value]]))
