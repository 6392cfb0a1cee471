"""Picklable toy objectives for honing.tune tests (imported by worker processes too)."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from honing.tune import Pruned


class Curve:
    """A learning curve that rises toward ``1 - (x - 0.3)^2`` over ``epochs``; stops when told."""

    def __init__(self, epochs: int = 9, sleep: float = 0.0) -> None:
        self.epochs, self.sleep = epochs, sleep

    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        quality = 1.0 - (params["x"] - 0.3) ** 2
        value = 0.0
        for epoch in range(1, self.epochs + 1):
            value = quality * (1.0 - 0.5 ** epoch)
            reporter.report(value, epoch)
            if self.sleep:
                time.sleep(self.sleep)
            if reporter.should_prune():
                raise Pruned(f"pruned at epoch {epoch}")
        reporter.set("pid", os.getpid())
        return value


class Quadratic:
    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        reporter.set("seed", reporter.seed)
        return -sum((v - 0.3) ** 2 for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool))


class Failing:
    """Fails for x > 0.5 with a ValueError, returns NaN for x < 0.1."""

    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        if params["x"] > 0.5:
            raise ValueError(f"x too large: {params['x']:.3f}")
        if params["x"] < 0.1:
            return math.nan
        return params["x"]


class InterruptAt:
    def __init__(self, number: int) -> None:
        self.number = number

    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        if reporter.number == self.number:
            raise KeyboardInterrupt
        return params["x"]


class TwoObjectives:
    def __call__(self, params: dict[str, Any], reporter: Any) -> list[float]:
        x = params["x"]
        return [x, (1.0 - x) ** 2]


class Echo:
    """Returns 0 and records the params it got (for grid and choice tests)."""

    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        reporter.set("got", params)
        return float(len(params))


class DieOnce:
    """The first trial to run kills its worker process (as an out-of-memory kill would)."""

    def __init__(self, marker: str, sleep: float = 0.05) -> None:
        self.marker, self.sleep = marker, sleep

    def __call__(self, params: dict[str, Any], reporter: Any) -> float:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            time.sleep(self.sleep)
            return params["x"]
        os.close(fd)
        os._exit(3)


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from honing_tune_toys import Curve
from honing.tune import FloatParam, SearchSpace, optimize

if __name__ == "__main__":
    space = SearchSpace([FloatParam("x", 0.0, 1.0)])
    optimize(Curve(epochs=20, sleep=0.05), study_name="s", storage=None, space=space, sampler="random",
             n_trials=1000, workers=2, run_dir={run_dir!r}, progress=False)
"""
