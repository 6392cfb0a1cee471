"""The ensemble of a search's trials against the best single trial, at no extra training (issue 15).

For each task and seed, one ``honing run`` of the task's recipe with ``seed`` changed and an
``ensemble:`` section (greedy selection); then the same folder is re-run with ``method:
stacking`` and ``method: average``: the search and the final model are kept (resumed) and only
the ensemble stage runs again, so the three methods combine the very same trials. Figures are
on the test rows, from results.json's ``ensemble.test``:

  best single   the trial with the best validation value, its own weights (trained on the
                training rows, or its k fold models averaged under cross-validation, like the
                members)
  greedy / stacking / average   the ensembles
  final model   the run's model (retrained on train+validation)

``--distill`` also distills the greedy ensemble of each seed into one student (``honing
compress ENSEMBLE distill``) and tests it.

Tasks: the example recipes with a single objective (digits-mlp, wine-cv, diabetes-regression,
breast-cancer as a single-objective search of the multi-objective example's space) and a
Fashion-MNIST subset CNN (12,000 rows, 8 trials of 8 epochs; ``--fashion-trials N`` for a
larger search, reported as task ``fashion-Nt``).

usage: bench/run.sh bench/ensemble_vs_single.py [--tasks digits,wine,...] [--seeds 0,1,2,3,4] [--distill]
       [--fashion-trials N]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
OUT = HERE / "out" / "ensemble"


def _example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def _breast_cancer() -> dict:
    r = _example("breast-cancer-multiobjective.yaml")
    r["name"] = "breast-cancer"
    tune = r["tune"]
    tune.pop("objectives"), tune.pop("select")
    tune.update(sampler="auto", metric="val_accuracy")
    return r


FASHION_TRIALS = 8


def _fashion() -> dict:
    return {
        "name": "fashion-subset",
        "data": {"source": "fashion-mnist", "limit": 12000, "val_size": 0.15},
        "model": {"name": "cnn", "channels": [16, 32], "batch_norm": True, "dropout": 0.2, "head_hidden": 128,
                  "global_pool": None},
        "training": {"epochs": 8, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.002,
                                                                    "weight_decay": 0.0005},
                     "schedule": {"name": "onecycle", "max_lr": 0.004}, "threads": 1},
        "tune": {"n_trials": FASHION_TRIALS, "metric": "val_accuracy", "final": "best_trial",
                 "space": {"training.schedule.max_lr": {"float": [2.0e-3, 1.0e-2], "log": True},
                           "model.dropout": {"float": [0.05, 0.3]},
                           "training.optimizer.weight_decay": {"float": [1.0e-5, 1.0e-2], "log": True}}},
    }


TASKS = {
    "digits": (lambda: _example("digits-mlp.yaml"), 1, "accuracy"),
    "wine": (lambda: _example("wine-cv.yaml"), 1, "accuracy"),
    "diabetes": (lambda: _example("diabetes-regression.yaml"), 1, "r2"),
    "breast-cancer": (_breast_cancer, 1, "accuracy"),
    "fashion": (_fashion, 2, "accuracy"),
}
METHODS = ("stacking", "average", "greedy")  # greedy last: its folder is the one distilled
STUDENT = {"digits": {"name": "mlp", "hidden": [64]}, "fashion": {"name": "cnn", "channels": [8, 16],
                                                                  "global_pool": None, "head_hidden": 64}}


def run_task(task: str, seed: int, *, distill: bool) -> dict:
    from honing.pipeline import compress_folder, run

    make, workers, metric = TASKS[task]
    recipe = make()
    recipe["seed"] = seed
    recipe.setdefault("training", {})["threads"] = 1
    recipe["tune"]["warm_start"] = False  # seeds independent of each other
    name = task if task != "fashion" or FASHION_TRIALS == 8 else f"fashion-{FASHION_TRIALS}t"
    out = OUT / f"{name}-s{seed}"
    row: dict = {"task": name, "seed": seed, "metric": metric}
    for method in METHODS:
        r = copy.deepcopy(recipe)
        r["ensemble"] = {"method": method}
        t0 = time.perf_counter()
        res = run(r, out=out, workers=workers, threads=1, progress=False).results
        ens = res["ensemble"]
        stage = next(s for s in res["stages"] if s["stage"] == "ensemble")
        if method == METHODS[0]:  # the run that searched
            row["search_s"] = round(res["timings"]["search"], 2)
            row["trials"] = res["trials"]
        if method == "greedy":
            test = ens["test"]
            row["best_single"] = test["best_single"]["metrics"][metric]
            row["best_single_loss"] = test["best_single"]["metrics"]["loss"]
            row["final_model_loss"] = test["final_model"]["metrics"]["loss"]
            row["best_single_ece"] = test["best_single"].get("ece")
            row["final_model"] = test["final_model"]["metrics"][metric]
            row["params"] = {"best_single": test["best_single"]["parameters"], "greedy": test["ensemble"]["parameters"]}
            row["latency_ms"] = {"best_single": test["best_single"]["latency_ms"],
                                 "greedy": test["ensemble"]["latency_ms"]}
        row[method] = ens["test"]["ensemble"]["metrics"][metric]
        row[f"{method}_loss"] = ens["test"]["ensemble"]["metrics"]["loss"]
        row[f"{method}_ece"] = ens["test"]["ensemble"].get("ece")
        row[f"{method}_members"] = len(ens["members"])
        row[f"{method}_stage_s"] = stage["seconds"]
        row[f"{method}_wall_s"] = round(time.perf_counter() - t0, 2)
    if distill and task in STUDENT:
        r = copy.deepcopy(recipe)
        r.pop("tune"), r.pop("ensemble", None)
        r["compress"] = [{"distill": {"model": STUDENT[task]}}]
        res = compress_folder(out / "ensemble", r, threads=1, progress=False)
        stages = {s["stage"]: s for s in res["stages"]}
        row["student"] = stages["distill"]["metrics"][metric]
        row["params"]["student"] = stages["distill"]["parameters"]
    return row


def summary(paths: list[Path]) -> None:
    """Per task, the means over seeds; the ensemble counts as better when its mean beats the best
    single trial's (accuracy, r2: higher; loss: lower)."""
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    cols = ["best_single", *METHODS, "final_model"]
    print(f"{'task':<14}{'metric':<9}{'seeds':>6}" + "".join(f"{c:>13}" for c in cols) + f"{'student':>10}")
    better = {m: 0 for m in METHODS}
    for task in tasks:
        rs = [r for r in rows if r["task"] == task]
        m = {c: mean([r[c] for r in rs]) for c in cols}
        student = f"{mean([r['student'] for r in rs]):>10.4f}" if all("student" in r for r in rs) else ""
        print(f"{task:<14}{rs[0]['metric']:<9}{len(rs):>6}" + "".join(f"{m[c]:>13.4f}" for c in cols) + student)
        if all("best_single_loss" in r for r in rs):
            lo = {c: mean([r[f"{c}_loss"] for r in rs]) for c in cols}
            print(f"{'':<14}{'loss':<9}{'':>6}" + "".join(f"{lo[c]:>13.4f}" for c in cols))
        for meth in METHODS:
            better[meth] += m[meth] > m["best_single"]
        wins = {meth: sum(r[meth] > r["best_single"] for r in rs) for meth in METHODS}
        losses = {meth: sum(r[meth] < r["best_single"] for r in rs) for meth in METHODS}
        print(f"{'':<14}{'seeds better/worse than best single: ':<9}" +
              ", ".join(f"{meth} {wins[meth]}/{losses[meth]}" for meth in METHODS))
    print("tasks where the ensemble's mean beats the best single trial's: " +
          ", ".join(f"{meth} {better[meth]}/{len(tasks)}" for meth in METHODS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary", action="store_true", help="print the table of bench/out/ensemble/results*.jsonl")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--distill", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--fashion-trials", type=int, default=8, help="trials of the Fashion-MNIST search (default 8)")
    args = ap.parse_args()
    global FASHION_TRIALS
    FASHION_TRIALS = args.fashion_trials
    if args.summary:
        summary(sorted(OUT.glob("results*.jsonl")))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    dest = OUT / f"results{args.tag}.jsonl"
    for task in args.tasks.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            row = run_task(task, seed, distill=args.distill)
            rows.append(row)
            with dest.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{task} s{seed}: best single {row['best_single']:.4f}  greedy {row['greedy']:.4f} "
                  f"({row['greedy_members']})  stacking {row['stacking']:.4f}  average {row['average']:.4f}  "
                  f"final {row['final_model']:.4f}" + (f"  student {row['student']:.4f}" if "student" in row else ""),
                  flush=True)


if __name__ == "__main__":
    main()
