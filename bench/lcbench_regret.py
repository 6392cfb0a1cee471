"""Multi-fidelity search on YAHPO Gym's LCBench surrogate: regret against simulated time.

LCBench (Zimmer et al. 2021) trained 2,000 MLP configurations per OpenML task for 52 epochs;
YAHPO Gym's surrogate (an ONNX network) predicts a configuration's validation accuracy and
its cumulative training time at any epoch 1-52. A trial here is one configuration of the 7
MLP hyperparameters (batch_size, learning_rate, momentum, weight_decay, num_layers,
max_units, max_dropout; the search space is read from YAHPO's config space). Its learning
curve is queried from the surrogate in one batch of 52 rows, then reported epoch by epoch
to the trial (``trial.report(val_accuracy[e], e)``), and the trial stops when its pruner
says so. Its cost is the surrogate's simulated ``time`` at the last epoch it reached (a
pruned trial pays only for the epochs it ran). A completed trial's value is the best
epoch's validation accuracy (what honing's RecipeObjective returns); pruned trials give no
value (honing selects only completed trials).

Three strategies, each driven in-process through Optuna's ask/tell with in-memory storage
(``honing.tune.optimize`` is not used: its journal storage and process machinery would
dominate the wall time and play no part in which configurations are tried):

  honing   the sampler and pruner a ``honing run`` recipe gets by default, made by name with
           ``honing.tune.create_sampler("tpe", seed=s, space=..., directions=["maximize"],
           n_trials=None)`` and ``create_pruner("asha", max_epochs=52, n_trials=None)``:
           multivariate, grouped TPE with 10 start-up trials; successive halving from epoch
           1, reduction factor 3 (rungs at epochs 1, 3, 9, 27). ``n_trials=None`` is what a
           recipe with a time budget (``n_trials: null, timeout: ...``) passes.
  optuna   plain Optuna: ``TPESampler(seed=s)`` (independent TPE, 10 start-up trials) and
           ``HyperbandPruner()`` (min_resource 1, max_resource "auto", reduction factor 3).
  random   ``RandomSampler(seed=s)`` and no pruning: every trial trains 52 epochs.

Budget: per task, B = 30 x the median simulated time of a 52-epoch run (median over the
reference sample below), i.e. about 30 full trainings; each run asks for trials until its
spent simulated time reaches B. The incumbent at simulated time t is the best value among
trials completed by t. Regret = reference - incumbent, in accuracy points (val_accuracy is
in %). Reference: per task, the best value seen anywhere, i.e. the maximum of (a) the best
epoch's accuracy over 5,000 uniformly random configurations and (b) every completed trial of
every strategy and seed. Regret is reported at 10%, 25%, 50% and 100% of B: median over
tasks x seeds, the ratio of honing's median to the others', and the fraction of
(task, seed) pairs where honing's regret is at or below the other's.

Data: ``$LCBENCH_DATA`` or ``../shared/data/yahpo-lcbench`` (the folder holding lcbench/).
yahpo-gym's local configuration file is written to ``$YAHPO_LOCAL_CONFIG``, by default
``bench/out/yahpo_gym.yaml`` (not the home folder). No network is used.

usage: OMP_NUM_THREADS=1 bench/run.sh bench/lcbench_regret.py [--seeds 5] [--tasks 8]
       [--budget 30] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import OUT, check_env, machine, median, save

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EPOCHS = 52
STRATEGIES = ("honing", "optuna", "random")
# --ablation: swap one part at a time between the first two, to see which part makes the difference
ABLATIONS = ("honing_tpe_hyperband", "optuna_tpe_asha")
LABEL = {"honing": "honing default (tpe + asha)", "optuna": "Optuna TPE + Hyperband", "random": "random, no pruning",
         "honing_tpe_hyperband": "honing tpe + honing hyperband", "optuna_tpe_asha": "Optuna TPE + honing asha"}
CHECKPOINTS = (0.10, 0.25, 0.50, 1.00)
HPARAMS = ("batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")


# --- the surrogate ----------------------------------------------------------------------------

def open_benchmark(data_path: Path) -> Any:
    """yahpo_gym's BenchmarkSet("lcbench"), with its local config kept out of the home folder."""
    if not (data_path / "lcbench" / "model.onnx").is_file():
        sys.exit(f"LCBench surrogate not found: {data_path}/lcbench/model.onnx (set LCBENCH_DATA)")
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YAHPO_LOCAL_CONFIG", str(OUT / "yahpo_gym.yaml"))
    import ConfigSpace

    # yahpo-gym 1.0.2 calls a private ConfigSpace<=0.6 method that ConfigSpace 1.x dropped (and
    # ConfigSpace 0.6 needs numpy<2); hyperparameter names come out sorted in 1.x anyway, and
    # the surrogate's input order comes from yahpo's own column list, not from this sort.
    if not hasattr(ConfigSpace.ConfigurationSpace, "_sort_hyperparameters"):
        ConfigSpace.ConfigurationSpace._sort_hyperparameters = lambda self: None
    from yahpo_gym import BenchmarkSet, local_config

    local_config.init_config()
    local_config.set_data_path(str(data_path))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # ConfigSpace 1.x: "The field 'default' should be 'default_value'"
        bench = BenchmarkSet("lcbench", multithread=False)  # prints a citation request: kept quiet
    return bench


def search_space(bench: Any) -> Any:
    """honing SearchSpace with the bounds and log scales of YAHPO's config space."""
    from honing.tune import FloatParam, IntParam, SearchSpace

    cs = bench.get_opt_space(drop_fidelity_params=True)
    params = []
    for name in HPARAMS:
        hp = cs[name]
        cls = IntParam if "Integer" in type(hp).__name__ else FloatParam
        cls_args = (int(hp.lower), int(hp.upper)) if cls is IntParam else (float(hp.lower), float(hp.upper))
        params.append(cls(name, *cls_args, log=bool(hp.log)))
    return SearchSpace(params)


class Surrogate:
    """One task's learning curves: ``curve(params) -> (val_accuracy[52], time[52])``."""

    def __init__(self, bench: Any, task: str) -> None:
        bench.set_instance(task)
        self.bench = bench
        self.task = task
        self.calls = 0

    def curve(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        rows = [{**params, "epoch": e} for e in range(1, EPOCHS + 1)]
        out = self.bench.objective_function(rows)
        acc = np.array([r["val_accuracy"] for r in out], dtype=np.float64)
        tim = np.array([r["time"] for r in out], dtype=np.float64)
        return acc, tim

    def curves(self, x: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Many configurations at once (columns of ``x``), straight through the ONNX session with
        yahpo's own encoding; checked against ``curve`` by ``check_fast_path``."""
        b = self.bench
        n = len(next(iter(x.values())))
        cont = np.empty((n * EPOCHS, len(b.config.cont_names)), dtype=np.float32)
        for j, name in enumerate(b.config.cont_names):
            cont[:, j] = np.tile(np.arange(1, EPOCHS + 1), n) if name == "epoch" else np.repeat(x[name], EPOCHS)
        cat = np.array([[b._integer_encode(self.task, name) for name in b.config.cat_names]], dtype=np.int32)
        cat = np.repeat(cat, n * EPOCHS, axis=0)
        inputs = [i.name for i in b.session.get_inputs()]
        y = b.session.run([b.session.get_outputs()[0].name], {inputs[0]: cat, inputs[1]: cont})[0]
        names = list(b.config.y_names)
        acc = y[:, names.index("val_accuracy")].astype(np.float64).reshape(n, EPOCHS)
        tim = y[:, names.index("time")].astype(np.float64).reshape(n, EPOCHS)
        return acc, tim


def ranks(v: np.ndarray) -> np.ndarray:
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    return r


def random_configs(space: Any, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for p in space:
        lo, hi = float(p.low), float(p.high)
        u = rng.random(n)
        if p.log:
            v = np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            v = lo + u * (hi - lo)
        if type(p).__name__ == "IntParam":
            v = np.clip(np.round(v), lo, hi)
        out[p.path] = v
    return out


def check_fast_path(sur: Surrogate, x: dict[str, np.ndarray], k: int = 5) -> float:
    """Largest difference between the batched ONNX path and yahpo's objective_function."""
    acc, tim = sur.curves({name: v[:k] for name, v in x.items()})
    worst = 0.0
    for i in range(k):
        params = {name: (int(v[i]) if name in ("batch_size", "num_layers", "max_units") else float(v[i]))
                  for name, v in x.items()}
        a, t = sur.curve(params)
        worst = max(worst, float(np.max(np.abs(a - acc[i]))), float(np.max(np.abs(t - tim[i]))))
    return worst


# --- one search -------------------------------------------------------------------------------

def make(strategy: str, space: Any, seed: int) -> tuple[Any, Any]:
    import optuna
    from honing.tune import create_pruner, create_sampler

    if strategy in ("honing", "honing_tpe_hyperband"):
        sampler = create_sampler("tpe", seed=seed, space=space, directions=["maximize"], n_trials=None)
        pruner = create_pruner("asha" if strategy == "honing" else "hyperband", max_epochs=EPOCHS, n_trials=None,
                               directions=["maximize"])
    elif strategy == "optuna_tpe_asha":
        sampler = optuna.samplers.TPESampler(seed=seed)
        pruner = create_pruner("asha", max_epochs=EPOCHS, n_trials=None, directions=["maximize"])
    elif strategy == "optuna":
        sampler = optuna.samplers.TPESampler(seed=seed)
        pruner = optuna.pruners.HyperbandPruner()
    elif strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
        pruner = optuna.pruners.NopPruner()
    else:
        raise ValueError(strategy)
    return sampler, pruner


def search(strategy: str, sur: Surrogate, space: Any, seed: int, budget: float) -> dict[str, Any]:
    """Ask for trials until the simulated time spent reaches ``budget``."""
    import optuna
    from optuna.trial import TrialState

    sampler, pruner = make(strategy, space, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                study_name=f"lcbench-{sur.task}-{strategy}-{seed}")
    spent = 0.0
    done: list[tuple[float, float]] = []  # (simulated time at completion, value)
    epochs_run: list[int] = []
    t0 = time.perf_counter()
    while spent < budget:
        trial = study.ask()
        params = space.suggest(trial)
        acc, tim = sur.curve(params)
        reached, pruned = 0, False
        for e in range(1, EPOCHS + 1):
            trial.report(float(acc[e - 1]), e)
            reached = e
            if trial.should_prune():
                pruned = True
                break
        spent += max(float(tim[reached - 1]), 0.0)
        epochs_run.append(reached)
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            value = float(np.max(acc))
            study.tell(trial, value)
            done.append((spent, value))
    return {"strategy": strategy, "task": sur.task, "seed": seed, "budget": budget, "spent": spent,
            "trials": len(epochs_run), "completed": len(done), "epochs": sum(epochs_run),
            "completions": done, "wall_s": time.perf_counter() - t0}


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile that keeps ``inf`` (no completed trial yet) as ``inf``."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(v[lo]) or math.isinf(v[hi]):
        return math.inf
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def jsonable(obj: Any) -> Any:
    """``inf`` (no completed trial yet) as None, so the JSON file is standard JSON."""
    if isinstance(obj, float) and math.isinf(obj):
        return None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def incumbent(run: dict[str, Any], t: float) -> float | None:
    vals = [v for when, v in run["completions"] if when <= t]
    return max(vals) if vals else None


# --- main -------------------------------------------------------------------------------------

def pick_tasks(instances: list[str], n: int) -> list[str]:
    """``n`` tasks spread evenly over YAHPO's list of 34 (fixed before any run; no choosing)."""
    step = len(instances) / n
    return [instances[int(i * step)] for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8, help="number of LCBench tasks (spread over the 34)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=30.0, help="budget in median 52-epoch runs of the task")
    ap.add_argument("--sample", type=int, default=5000, help="random configurations for the reference")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 tasks, 1 seed, budget 8, sample 500")
    ap.add_argument("--ablation", action="store_true", help=f"also run {', '.join(ABLATIONS)} (about 2x the time)")
    ap.add_argument("--data", default=os.environ.get("LCBENCH_DATA", str(ROOT.parent / "shared" / "data" / "yahpo-lcbench")))
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.seeds, args.budget, args.sample = 2, 1, 8.0, 500
    check_env()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    t_start = time.perf_counter()
    bench = open_benchmark(Path(args.data))
    bench.check = False  # the sampler keeps every value inside the space's bounds; 4x faster
    space = search_space(bench)
    tasks = pick_tasks(list(bench.instances), args.tasks)
    print(f"tasks {', '.join(tasks)}; seeds {args.seeds}; budget {args.budget:g} median 52-epoch runs", file=sys.stderr)

    runs: list[dict[str, Any]] = []
    per_task: dict[str, dict[str, Any]] = {}
    worst_fast = 0.0
    for ti, task in enumerate(tasks):
        sur = Surrogate(bench, task)
        rng = np.random.default_rng(10_000 + ti)
        x = random_configs(space, args.sample, rng)
        worst_fast = max(worst_fast, check_fast_path(sur, x))
        acc, tim = sur.curves(x)
        full_time = tim[:, -1]
        budget = args.budget * float(np.median(full_time))
        nonmono = float(np.mean(np.any(np.diff(tim, axis=1) < 0, axis=1)))
        best_rank = ranks(acc.max(1))
        early = {e: float(np.corrcoef(ranks(acc[:, e - 1]), best_rank)[0, 1]) for e in (1, 3, 9, 27)}
        per_task[task] = {"sample_best": float(acc.max()), "sample_median_best": float(np.median(acc.max(1))),
                          "median_full_time_s": float(np.median(full_time)), "budget_s": budget,
                          "time_nonmonotone_fraction": nonmono, "spearman_epoch_vs_best": early}
        for seed in range(args.seeds):
            order = (STRATEGIES if seed % 2 == 0 else STRATEGIES[::-1]) + (ABLATIONS if args.ablation else ())
            for strategy in order:
                run = search(strategy, sur, space, seed, budget)
                runs.append(run)
        best_any = max(v for r in runs if r["task"] == task for _, v in r["completions"])
        per_task[task]["best_found"] = best_any
        per_task[task]["reference"] = max(per_task[task]["sample_best"], best_any)
        per_task[task]["reference_from"] = "sample" if per_task[task]["sample_best"] >= best_any else "search"
        print(f"  task {task}: reference {per_task[task]['reference']:.2f} (sample {per_task[task]['sample_best']:.2f}, "
              f"searches {best_any:.2f}); budget {budget:,.0f} s simulated; "
              f"{time.perf_counter() - t_start:.0f} s so far", file=sys.stderr)

    # regret at the checkpoints
    def regret(run: dict[str, Any], frac: float) -> float:
        inc = incumbent(run, frac * run["budget"])
        return math.inf if inc is None else per_task[run["task"]]["reference"] - inc

    by = {(r["strategy"], r["task"], r["seed"]): r for r in runs}
    pairs = [(t, s) for t in tasks for s in range(args.seeds)]
    ran = STRATEGIES + (ABLATIONS if args.ablation else ())
    table = []
    for frac in CHECKPOINTS:
        row: dict[str, Any] = {"fraction": frac}
        regs = {st: [regret(by[(st, t, s)], frac) for t, s in pairs] for st in ran}
        for st in ran:
            row[f"{st}_median"] = quantile(regs[st], 0.5)
            row[f"{st}_q25"] = quantile(regs[st], 0.25)
            row[f"{st}_q75"] = quantile(regs[st], 0.75)
            row[f"{st}_none_yet"] = sum(math.isinf(v) for v in regs[st])
        for other in ("optuna", "random"):
            m = row[f"{other}_median"]
            finite = not (math.isinf(m) or math.isinf(row["honing_median"]))
            row[f"ratio_to_{other}"] = (row["honing_median"] / m) if finite and m > 0 else None
            row[f"at_or_below_{other}"] = sum(h <= o for h, o in zip(regs["honing"], regs[other])) / len(pairs)
        table.append(row)
    task_final = {t: {st: quantile([regret(by[(st, t, s)], 1.0) for s in range(args.seeds)], 0.5)
                      for st in ran}
                  for t in tasks}
    counts = {st: {"trials_median": median([by[(st, t, s)]["trials"] for t, s in pairs]),
                   "completed_median": median([by[(st, t, s)]["completed"] for t, s in pairs]),
                   "epochs_per_trial": sum(by[(st, t, s)]["epochs"] for t, s in pairs)
                   / sum(by[(st, t, s)]["trials"] for t, s in pairs),
                   "wall_s": sum(by[(st, t, s)]["wall_s"] for t, s in pairs)} for st in ran}

    import onnxruntime
    import yahpo_gym

    payload = {
        "benchmark": "lcbench_regret",
        "settings": {"tasks": tasks, "seeds": args.seeds, "budget_full_runs": args.budget, "sample": args.sample,
                     "epochs": EPOCHS, "checkpoints": list(CHECKPOINTS), "quick": args.quick,
                     "reference": "max(best epoch over the random sample, best completed trial of any run)",
                     "driver": "Optuna ask/tell in-process, in-memory storage, honing's sampler/pruner objects",
                     "ablation": args.ablation},
        "machine": machine(),
        "versions": {"optuna": optuna.__version__, "yahpo_gym": getattr(yahpo_gym, "__version__", "1.0.2"),
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "fast_path_max_abs_diff": worst_fast,
        "table": table,
        "per_task": per_task,
        "per_task_final_median_regret": task_final,
        "counts": counts,
        "runs": [{k: v for k, v in r.items()} for r in runs],
        "wall_s": time.perf_counter() - t_start,
    }
    path = save("lcbench_regret", jsonable(payload))

    def fmt(v: float | None) -> str:
        return "-" if v is None else ("none yet" if math.isinf(v) else f"{v:.2f}")

    print(f"\nLCBench surrogate, {len(tasks)} tasks x {args.seeds} seeds; budget {args.budget:g} median 52-epoch runs "
          f"of simulated time; regret in val accuracy points (median over runs; IQR in brackets)\n")
    print("| % of budget | honing default (tpe + asha) | Optuna TPE + Hyperband | random, no pruning "
          "| honing / Optuna | honing / random | honing <= Optuna | honing <= random |")
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        cells = [f"{fmt(row[f'{st}_median'])} ({fmt(row[f'{st}_q25'])}-{fmt(row[f'{st}_q75'])})" for st in STRATEGIES]
        ratios = ["-" if row[f"ratio_to_{o}"] is None else f"{row[f'ratio_to_{o}']:.2f}" for o in ("optuna", "random")]
        fracs = [f"{row[f'at_or_below_{o}']:.0%}" for o in ("optuna", "random")]
        print(f"| {row['fraction']:.0%} | " + " | ".join(cells + ratios + fracs) + " |")
    if args.ablation:
        print("\nAblation (median regret; IQR in brackets): one part swapped at a time\n")
        print("| % of budget | " + " | ".join(LABEL[st] for st in ran) + " |")
        print("|---|" + "---|" * len(ran))
        for row in table:
            print(f"| {row['fraction']:.0%} | " + " | ".join(
                f"{fmt(row[f'{st}_median'])} ({fmt(row[f'{st}_q25'])}-{fmt(row[f'{st}_q75'])})" for st in ran) + " |")
    print("\n| strategy | trials (median) | completed (median) | epochs per trial | search wall time (all runs) |")
    print("|---|---|---|---|---|")
    for st in ran:
        c = counts[st]
        print(f"| {LABEL[st]} | {c['trials_median']:.0f} | {c['completed_median']:.0f} | {c['epochs_per_trial']:.1f} "
              f"| {c['wall_s']:.0f} s |")
    print("\nMedian regret at 100% of the budget by task; reference (from the random sample or a search); rank "
          "correlation (Spearman, random sample) of the accuracy at epochs 1 / 3 / 9 with the best epoch's\n")
    print("| task | reference | " + " | ".join(LABEL[st] for st in ran) + " | rank corr. epoch 1 / 3 / 9 |")
    print("|---|---|" + "---|" * len(ran) + "---|")
    for t in tasks:
        f, c = task_final[t], per_task[t]["spearman_epoch_vs_best"]
        print(f"| {t} | {per_task[t]['reference']:.2f} ({per_task[t]['reference_from']}) | "
              + " | ".join(fmt(f[st]) for st in ran) + f" | {c[1]:.2f} / {c[3]:.2f} / {c[9]:.2f} |")
    print(f"\nfast path vs objective_function: max abs diff {worst_fast:.2e}; wall {payload['wall_s']:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
