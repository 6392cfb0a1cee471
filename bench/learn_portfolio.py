"""(issue 14) Learn AutoSampler's start portfolios offline from YAHPO surrogates.

For each scenario (a model family: lcbench's funnel MLPs, rbv2_xgboost, rbv2_rpart), the
instances ``bench/sampler_suite.py --suite yahpo`` evaluates on (``yahpo_tasks``: every k-th of
the list) are **held out**; the portfolio is learned on up to ``--train`` of the others:

1. ``--candidates`` configurations drawn from the scenario's config space (seeded, conditions
   respected) are scored on every training instance at the largest fidelity;
2. each score becomes a normalised regret on its instance: ``(best - v) / (best - median)``
   (0 is the best candidate there, 1 the median one), capped at 2;
3. greedily, the configuration that most lowers the mean over training instances of the best
   normalised regret in the portfolio so far is added, ``--size`` times.

The result goes to ``src/honing/tune/portfolios.json`` (the scenario's name -> configurations,
with the instances learned on and held out), which ``honing.tune.portfolio(name)`` reads.

    OMP_NUM_THREADS=1 bench/run_hpo.sh bench/learn_portfolio.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import check_env  # noqa: E402
from sampler_suite import YahpoTask, open_yahpo, yahpo_tasks  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "honing" / "tune" / "portfolios.json"
FAMILY = {"lcbench": "funnel-shaped MLPs trained with SGD (LCBench, Auto-PyTorch)",
          "rbv2_xgboost": "XGBoost (gbtree, gblinear, dart; rbv2)", "rbv2_rpart": "rpart decision trees (rbv2)"}


def plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def learn(data: str, scenario: str, n_train: int, n_candidates: int, size: int, held: list[str]) -> dict[str, Any]:
    bench = open_yahpo(data, scenario)
    instances = [str(i) for i in bench.instances]
    train = [i for i in instances if i not in held][:n_train]
    space = bench.get_opt_space(drop_fidelity_params=True, seed=0)
    id_key = "OpenML_task_id" if "OpenML_task_id" in bench.config.hp_names else "task_id"
    fidelity = {p.name: p.upper for p in list(bench.get_fidelity_space().values()) if hasattr(p, "upper")}
    metric, lower = YahpoTask(scenario, instances[0], data).target()
    cands = [{k: plain(v) for k, v in dict(c).items() if k != id_key} for c in space.sample_configuration(n_candidates)]
    regret = np.zeros((len(train), len(cands)))
    for row, inst in enumerate(train):
        res = bench.objective_function([{**c, id_key: inst, **fidelity} for c in cands], seed=0)
        v = np.array([float(r[metric]) for r in res]) * (-1.0 if lower else 1.0)  # higher is better
        best, med = v.max(), np.median(v)
        regret[row] = np.minimum((best - v) / max(best - med, 1e-12), 2.0)
    chosen: list[int] = []
    current = np.full(len(train), np.inf)
    for _ in range(size):
        score = [np.mean(np.minimum(current, regret[:, j])) if j not in chosen else np.inf for j in range(len(cands))]
        j = int(np.argmin(score))
        chosen.append(j)
        current = np.minimum(current, regret[:, j])
        print(f"  {scenario}: +candidate {j}: mean best normalised regret on training instances {current.mean():.3f}")
    return {"family": FAMILY.get(scenario, scenario), "learned_on": train, "held_out": held,
            "candidates": n_candidates, "configurations": [cands[j] for j in chosen],
            "training_regret": float(current.mean())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="lcbench,rbv2_xgboost,rbv2_rpart")
    ap.add_argument("--instances", type=int, default=5, help="held out per scenario, as sampler_suite picks them")
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "yahpo"))
    args = ap.parse_args()
    check_env()
    out = {"made_by": "bench/learn_portfolio.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "data"),
           "portfolios": {}}
    for sc in args.scenarios.split(","):
        held = [t.instance for t in yahpo_tasks(args.data, [sc], args.instances)]
        out["portfolios"][sc] = learn(args.data, sc, args.train, args.candidates, args.size, held)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
