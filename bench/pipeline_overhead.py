"""Per-trial overhead of the pipeline around the Trainer, on the digits recipe.

One trial = ``RecipeObjective(params, reporter)``: the recipe with the trial's parameters,
the data (loaded once per process), the model, the Trainer, the reporter. The Trainer's own
epochs are timed from inside (``Trainer.iter_fit`` wrapped), so what is left is what the
pipeline adds: recipe handling, data lookup, building, reporting, bookkeeping.

Run it against two source trees side by side (the same machine, interleaved):

    bench/run.sh bench/pipeline_overhead.py --src /tmp/before/src --src src

Each tree runs in its own fresh process per round; rounds alternate between trees.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARAMS = [
    {"training.optimizer.lr": 0.003, "model.hidden": [64], "training.batch_size": 64},
    {"training.optimizer.lr": 0.01, "model.hidden": [128], "training.batch_size": 128},
    {"training.optimizer.lr": 0.001, "model.hidden": [128, 64], "training.batch_size": 64},
]


def _one_process(trials: int, epochs: int) -> dict[str, float]:
    """Runs in the child: ``trials`` trials of the digits recipe; times in ms."""
    import time

    import torch

    torch.set_num_threads(1)
    from honing.pipeline import RecipeObjective
    from honing.recipe import load_recipe
    from honing.train import Trainer

    inside = [0.0]
    original = Trainer.iter_fit

    def timed_iter_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gen = original(self, *args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(gen)
            except StopIteration:
                inside[0] += time.perf_counter() - t0
                return
            inside[0] += time.perf_counter() - t0
            yield item

    Trainer.iter_fit = timed_iter_fit  # type: ignore[method-assign]

    class FakeReporter:
        def __init__(self, number: int) -> None:
            self.number, self.seed = number, number

        def report(self, value: float, step: int) -> None:
            pass

        def should_prune(self) -> bool:
            return False

        def set(self, key: str, value: object) -> None:
            json.dumps(value)

    rec = load_recipe(HERE.parent / "examples" / "digits-mlp.yaml")
    rec = rec.with_params({"training.epochs": epochs, "training.schedule.warmup_steps": 2, "tune.cv": None})
    with tempfile.TemporaryDirectory() as tmp:
        objective = RecipeObjective(rec.to_dict(), tmp, threads=1)  # both trees take the resolved recipe
        totals, inner = [], []
        for i in range(trials):
            inside[0] = 0.0
            t0 = time.perf_counter()
            objective(PARAMS[i % len(PARAMS)], FakeReporter(i))
            totals.append(time.perf_counter() - t0)
            inner.append(inside[0])
    first = 1e3 * (totals[0] - inner[0])
    warm = [1e3 * (t - s) for t, s in zip(totals[1:], inner[1:])]
    return {"first_trial_overhead_ms": first, "overhead_ms": statistics.median(warm),
            "trainer_ms": 1e3 * statistics.median(inner[1:]), "trial_ms": 1e3 * statistics.median(totals[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", help="a honing source tree (the folder holding honing/)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_process(args.trials, args.epochs)))
        return
    sources = args.src or [str(HERE.parent / "src")]
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in sources}
    for r in range(args.rounds):
        for src in sources:
            env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--child", "--trials", str(args.trials),
                                  "--epochs", str(args.epochs)], env=env, check=True, capture_output=True, text=True)
            runs[src].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {src}: {runs[src][-1]}", file=sys.stderr)
    summary = {}
    for src, rows in runs.items():
        summary[src] = {k: round(statistics.median(row[k] for row in rows), 2) for k in rows[0]}
    if len(sources) == 2:
        a, b = (summary[s] for s in sources)
        summary["ratio_overhead_second_over_first"] = round(b["overhead_ms"] / a["overhead_ms"], 3)
        summary["ratio_first_trial_overhead"] = round(b["first_trial_overhead_ms"] / a["first_trial_overhead_ms"], 3)
    print(json.dumps(summary, indent=2))
    sys.path.insert(0, str(HERE))
    from _common import machine, save

    save("pipeline_overhead", {"machine": machine(), "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
