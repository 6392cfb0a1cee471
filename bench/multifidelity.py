"""(issue 14) Multi-fidelity search on YAHPO's lcbench: epochs are the fidelity, as in honing.

Each trial reports the surrogate's validation accuracy at epochs 1..52 (one batched surrogate
call per trial) to the study's pruner and stops when it says so; the budget is counted in
epochs: ``--budget`` full trials' worth (52 epochs each). The incumbent after ``b`` full
trials' worth of epochs is the best *finished* trial's final accuracy (a stopped trial is no
result). Normalised regret: divided by random search's (no pruning) median regret after 10 full
trials' worth, per task.

Contenders, one run: ``honing`` = AutoSampler + ``pruner: auto`` as a time-budgeted recipe makes
it (successive halving guarded against thin rungs); ``tpe+hyperband`` = Optuna's TPE with its
HyperbandPruner (min_resource 1), as Optuna's docs pair them; ``tpe+sha`` = TPE with
SuccessiveHalvingPruner; ``tpe`` = TPE without pruning; ``random`` = random search, no pruning.

    OMP_NUM_THREADS=1 bench/run_hpo.sh bench/multifidelity.py --seeds 10 --instances 5
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import check_env, machine, save  # noqa: E402
from sampler_suite import open_yahpo, yahpo_tasks  # noqa: E402

EPOCHS = 52
CHECKPOINTS = (10, 25, 50, 100)
CONTENDERS = ("honing", "tpe+hyperband", "tpe+sha", "tpe", "random")


def make(name: str, seed: int) -> tuple[Any, Any]:
    import optuna

    from honing.tune import AutoSampler, create_pruner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "honing":
            return AutoSampler(seed=seed), create_pruner("auto", max_epochs=EPOCHS, n_trials=None)
        tpe = optuna.samplers.TPESampler(seed=seed)
        if name == "tpe+hyperband":
            return tpe, optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS)
        if name == "tpe+sha":
            return tpe, optuna.pruners.SuccessiveHalvingPruner()
        if name == "tpe":
            return tpe, optuna.pruners.NopPruner()
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    raise ValueError(name)


def one_run(job: tuple[Any, int, str, int]) -> dict[str, Any]:
    import optuna

    from sampler_suite import _active, _suggest

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task, seed, name, budget = job
    if name == "dehb":
        return dehb_run(task, seed, budget)
    bench = task.bench()
    space = bench.get_opt_space(drop_fidelity_params=True)
    params = [p for p in space.get_hyperparameters() if p.name != "OpenML_task_id"]
    sampler, pruner = make(name, seed)
    study = optuna.create_study(sampler=sampler, pruner=pruner, direction="maximize")
    spent, best, incumbent, sampler_s, n_pruned = 0, -math.inf, [], 0.0, 0
    while spent < budget * EPOCHS:
        t0 = time.perf_counter()
        trial = study.ask()
        config: dict[str, Any] = {}
        for p in params:
            if _active(space, p.name, config):
                config[p.name] = _suggest(trial, p)
        sampler_s += time.perf_counter() - t0
        rows = [{**config, "OpenML_task_id": task.instance, "epoch": e} for e in range(1, EPOCHS + 1)]
        curve = [float(r["val_accuracy"]) for r in bench.objective_function(rows, seed=0)]
        stopped = False
        for e, value in enumerate(curve, start=1):
            spent += 1
            trial.report(value, e)
            if e < EPOCHS and trial.should_prune():
                stopped = True
                break
            if spent >= budget * EPOCHS:
                break
        if stopped or e < EPOCHS:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            n_pruned += stopped
        else:
            study.tell(trial, curve[-1])
            best = max(best, curve[-1])
        incumbent.extend([best] * (spent - len(incumbent)))
    per_full = [incumbent[b * EPOCHS - 1] for b in range(1, budget + 1)]
    return {"task": task.name, "seed": seed, "name": name, "incumbent": per_full, "trials": len(study.trials),
            "pruned": n_pruned, "sampler_ms": 1000 * sampler_s / max(1, len(study.trials))}


def dehb_run(task: Any, seed: int, budget: int) -> dict[str, Any]:
    """DEHB by ask and tell: each evaluation runs the asked configuration to the asked epoch."""
    import tempfile

    from _external import plain
    from dehb import DEHB

    bench = task.bench()
    space = task.config_space()
    space.seed(seed)
    constants = {p.name: p.value for p in bench.get_opt_space(drop_fidelity_params=True).get_hyperparameters()
                 if type(p).__name__ == "Constant"}
    with tempfile.TemporaryDirectory() as out:
        dehb = DEHB(cs=space, dimensions=len(space), min_fidelity=1, max_fidelity=EPOCHS, eta=3, n_workers=1,
                    output_path=out, seed=seed, log_level="ERROR")
        spent, best, incumbent, sampler_s, n_pruned, n = 0, -math.inf, [], 0.0, 0, 0
        while spent < budget * EPOCHS:
            t0 = time.perf_counter()
            job = dehb.ask()
            row = {**plain(job["config"]), **constants}  # a Configuration already
            sampler_s += time.perf_counter() - t0
            epochs = min(EPOCHS, max(1, int(round(job["fidelity"]))), budget * EPOCHS - spent)
            value = float(bench.objective_function({**row, "OpenML_task_id": task.instance, "epoch": epochs},
                                                   seed=0)[0]["val_accuracy"])
            spent, n = spent + epochs, n + 1
            if epochs == EPOCHS:
                best = max(best, value)
            else:
                n_pruned += 1
            t0 = time.perf_counter()
            dehb.tell(job, {"fitness": -value, "cost": float(epochs)})
            sampler_s += time.perf_counter() - t0
            incumbent.extend([best] * (spent - len(incumbent)))
    per_full = [incumbent[b * EPOCHS - 1] for b in range(1, budget + 1)]
    return {"task": task.name, "seed": seed, "name": "dehb", "incumbent": per_full, "trials": n,
            "pruned": n_pruned, "sampler_ms": 1000 * sampler_s / max(1, n)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--budget", type=int, default=100, help="in full trials' worth of epochs")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "yahpo"))
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    check_env()
    open_yahpo(args.data, "lcbench")
    tasks = yahpo_tasks(args.data, ["lcbench"], args.instances)
    names = list(dict.fromkeys([*args.contenders.split(","), "random"]))
    jobs = [(t, s, n, args.budget) for t in tasks for s in range(args.seeds) for n in names]
    start = time.time()
    with mp.get_context("spawn").Pool(args.processes) as pool:
        runs = list(pool.imap_unordered(one_run, jobs, chunksize=2))
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    table: dict[str, dict[int, list[float]]] = {n: {c: [] for c in checkpoints} for n in names}
    for task in {r["task"] for r in runs}:
        rs = [r for r in runs if r["task"] == task]
        ref = max(v for r in rs for v in r["incumbent"] if math.isfinite(v))
        scale = statistics.median(ref - r["incumbent"][9] for r in rs if r["name"] == "random") or 1.0
        for r in rs:
            for c in checkpoints:
                v = r["incumbent"][c - 1]
                table[r["name"]][c].append((ref - v) / scale if math.isfinite(v) else math.inf)
    summary = {n: {c: float(np.mean(v)) for c, v in table[n].items()} for n in names}
    print(f"lcbench, {len(tasks)} instances x {args.seeds} seeds; budget in full trials' worth of epochs; "
          f"{time.time() - start:.0f} s")
    print(f"{'contender':<15}" + "".join(f"{'@' + str(c):>9}" for c in checkpoints) +
          f"{'trials':>9}{'stopped':>9}{'ms/trial':>10}")
    for n in names:
        rs = [r for r in runs if r["name"] == n]
        print(f"{n:<15}" + "".join(f"{summary[n][c]:>9.3f}" for c in checkpoints) +
              f"{np.mean([r['trials'] for r in rs]):>9.0f}{np.mean([r['pruned'] for r in rs]):>9.0f}"
              f"{np.mean([r['sampler_ms'] for r in rs]):>10.1f}")
    print(f"wrote {save('multifidelity', {'machine': machine(), 'args': vars(args), 'summary': summary, 'runs': runs})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
