"""Energy per trial of the example recipes (issue 17).

Runs each small example recipe as shipped (``honing run``, 1 torch thread per worker, one worker,
``--n-trials`` where given to bound the time) and reads results.json's ``energy``: the search's
joules (the sum of every trial's own reading, in the process that ran it), per trial, and the
final training's and test inference's, with the method. Where ``/sys/class/powercap`` cannot be
read (these machines), the method is ``estimated``: CPU seconds x ``HONING_CPU_WATTS_PER_CORE``
(10 W by default), a labelled estimate, not a measurement.

The Fashion-MNIST examples (minutes to tens of minutes each) are left out; their figures are in
the robustness and SNN sections.

usage: bench/run.sh bench/energy_examples.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "energy_examples"
EXAMPLES = HERE.parent / "examples"

RUNS = [  # (recipe, extra CLI arguments)
    ("digits-mlp.yaml", []),
    ("wine-cv.yaml", []),
    ("breast-cancer-multiobjective.yaml", []),
    ("diabetes-regression.yaml", []),
    ("digits-ensemble.yaml", []),
    ("loans-fairness.yaml", []),
    ("digits-robust-tradeoff.yaml", []),
]


def main() -> None:
    from honing.cli import main as honing

    OUT.mkdir(parents=True, exist_ok=True)
    rows = {}
    for recipe, extra in RUNS:
        out = OUT / recipe.removesuffix(".yaml")
        t0 = time.perf_counter()
        code = honing(["run", str(EXAMPLES / recipe), "--out", str(out), "--quiet", "--threads", "1", *extra])
        wall = time.perf_counter() - t0
        if code != 0:
            rows[recipe] = {"error": f"exit {code}"}
            continue
        res = json.loads((out / "results.json").read_text())
        e = res.get("energy") or {}
        search = e.get("search") or {}
        trials = search.get("trials") or 0
        rows[recipe] = {
            "trials": trials, "search_j": search.get("joules"), "j_per_trial": (search.get("joules") or 0) / max(1, trials),
            "s_per_trial": (search.get("seconds") or 0) / max(1, trials),
            "final_training_j": (e.get("final_training") or {}).get("joules"),
            "test_inference_j": (e.get("test_inference") or {}).get("joules"),
            "method": search.get("method") or (e.get("final_training") or {}).get("method"), "wall_s": wall,
        }
        print(recipe, json.dumps(rows[recipe]), flush=True)
    (OUT / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
