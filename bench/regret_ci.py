"""(issue 14) How sure is "x% lower regret than TPE"? Bootstrap intervals from saved suite runs.

Reads one or more ``bench/out/sampler_suite_*.json`` files (merged: a (task, seed, sampler) run
seen twice counts once, so runs of the same sampler from several files may be combined, e.g.
auto from one run and TPE from another), scores them as ``sampler_suite.py`` does (regret
divided by random search's median regret at trial 10, per task; YAHPO's reference is the best
value any merged run found), and prints, at 10, 25, 50, 100 (and 200) trials, how much lower the mean
normalised regret of ``--sampler`` is than that of ``--against``, with two 95% bootstrap
intervals (4,000 draws):

* **over tasks**: the tasks drawn with replacement, every seed of each kept (how the figure
  could move on another suite of tasks like these, e.g. the held-out suite);
* **over seeds**: the seeds drawn with replacement, every task kept (how it could move on
  other seeds of the same tasks).

    python bench/regret_ci.py bench/out/sampler_suite_bbob_s35.json bench/out/sampler_suite_yahpo_upd.json \\
        bench/out/sampler_suite_yahpo_s35tpe.json --sampler auto --against tpe
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sampler_suite import task_regret  # noqa: E402  (the suite's own scoring)

CHECKPOINTS = (10, 25, 50, 100, 200)  # those within the runs' length are reported


def normalised(runs: list[dict], samplers: tuple[str, ...], checkpoints: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per task, per sampler: a seeds x checkpoints array of normalised regret (seeds in order)."""
    by_task: dict[str, list[dict]] = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    out: dict[str, dict[str, np.ndarray]] = {}
    for task, rs in by_task.items():
        if not any(r["sampler"] == "random" for r in rs):
            raise SystemExit(f"{task}: no random-search runs to normalise by (every suite run has them)")
        regret, scale = task_regret(rs)
        out[task] = {}
        for s in samplers:
            mine = sorted((r for r in rs if r["sampler"] == s), key=lambda r: r["seed"])
            if mine:
                out[task][s] = np.array([[regret[id(r)][c - 1] / scale for c in checkpoints] for r in mine])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--sampler", default="auto")
    ap.add_argument("--against", default="tpe")
    ap.add_argument("--draws", type=int, default=4000)
    args = ap.parse_args()
    runs: dict[tuple, dict] = {}
    for f in args.files:
        for r in json.loads(f.read_text())["runs"]:
            runs[(r["task"], r["seed"], r["sampler"])] = r
    length = min(len(r["incumbent"]) for r in runs.values())
    checkpoints = [c for c in CHECKPOINTS if c <= length]
    norm = normalised(list(runs.values()), (args.sampler, args.against), checkpoints)
    tasks = [t for t, v in norm.items() if args.sampler in v and args.against in v]
    shapes = {norm[t][s].shape for t in tasks for s in (args.sampler, args.against)}
    if not tasks or len(shapes) != 1:
        raise SystemExit(f"need both samplers on every task with the same seeds; got {len(tasks)} tasks, "
                         f"shapes {sorted(shapes)}")
    a = np.stack([norm[t][args.sampler] for t in tasks])  # tasks x seeds x checkpoints
    b = np.stack([norm[t][args.against] for t in tasks])
    lower = 100 * (1 - a.mean((0, 1)) / b.mean((0, 1)))
    print(f"{len(tasks)} tasks x {a.shape[1]} seeds; mean normalised regret of {args.sampler} / {args.against}, "
          f"and how much lower it is")
    rng = np.random.default_rng(0)
    intervals = {}
    for name, axis in (("tasks", 0), ("seeds", 1)):
        draws = []
        for _ in range(args.draws):
            i = rng.integers(a.shape[axis], size=a.shape[axis])
            draws.append(100 * (1 - np.take(a, i, axis).mean((0, 1)) / np.take(b, i, axis).mean((0, 1))))
        intervals[name] = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    wa, wb = max(10, len(args.sampler) + 2), max(10, len(args.against) + 2)
    print(f"{'trials':>7}{args.sampler:>{wa}}{args.against:>{wb}}{'lower':>8}{'95% over tasks':>18}{'95% over seeds':>18}")
    for k, c in enumerate(checkpoints):
        t, s = intervals["tasks"][:, k], intervals["seeds"][:, k]
        print(f"{c:>7}{a.mean((0, 1))[k]:>{wa}.3f}{b.mean((0, 1))[k]:>{wb}.3f}{lower[k]:>7.1f}%"
              f"{f'{t[0]:.1f} to {t[1]:.1f}%':>18}{f'{s[0]:.1f} to {s[1]:.1f}%':>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
