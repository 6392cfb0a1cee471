"""(issue 14) Search strategies side by side: normalised regret on the 24 BBOB functions and on
YAHPO Gym surrogates, over seeds, for honing's AutoSampler and Optuna's samplers.

Tasks:
* ``bbob``: the 24 noiseless BBOB functions (bench/_bbob.py, our own seeded instances) at the
  dimensions of ``--dims`` over ``[-5, 5]^d``, minimised; ``--noise moderate|severe`` adds
  multiplicative Gaussian noise (the incumbent is then judged by its noise-free value);
* ``yahpo``: single-fidelity YAHPO scenarios (``--scenarios``, default lcbench, rbv2_xgboost,
  rbv2_rpart, iaml_glmnet; instances spread over each list), their published target metric at
  the largest fidelity, the search space read from YAHPO's config space (conditional for
  rbv2_xgboost's booster). Needs the ``bench`` extra (yahpo-gym) and ``../shared/data/yahpo``.

Each (task, seed, sampler) is one Optuna study in memory with ``--trials`` trials. Regret after
``n`` trials: BBOB, ``f(incumbent)`` (f_opt is 0); YAHPO, ``reference - incumbent`` with the
reference the best value any run found. Normalised regret: the regret divided by random
search's median regret at trial 10 over the seeds, per task (as in the issue). Reported: mean
normalised regret at 10, 25, 50 and 100 trials, the mean rank of the samplers per (task, seed),
wins/ties/losses per task against Optuna's default TPE and against random search (median over
seeds), and the sampler's own time per trial (``--cost``: in each 100-trial window of a 500-trial
study).

Warm starts (YAHPO): ``auto+warm`` starts from the best 3 of a finished 100-trial auto study on
a related task, the next instance of the scenario (another data set); ``auto+update`` from one
on the same data set at half its fidelity (half the training rows for rbv2 and iaml, the data
before it grew; half the epochs for lcbench), the case of a recipe re-run on updated data;
``auto+transfer`` / ``auto+update-transfer`` also put every trial of that study into the model
(``AutoSampler(history=...)``). For each, the
number of tasks on which its median curve reaches cold auto's median 100-trial result within 30
trials.

    OMP_NUM_THREADS=1 bench/run.sh bench/sampler_suite.py --suite bbob --seeds 10 --dims 2,5,10
    OMP_NUM_THREADS=1 bench/run.sh bench/sampler_suite.py --quick
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _bbob import NAMES, Bbob  # noqa: E402
from _common import check_env, machine, save  # noqa: E402
from _external import EXTERNAL, make_external  # noqa: E402

CHECKPOINTS = (10, 25, 50, 100, 200)  # those within --trials are reported
SAMPLERS = ("auto", "tpe", "random", "cmaes", "gp")


def make_sampler(name: str, seed: int, n_trials: int) -> Any:
    import optuna

    from honing.tune import AutoSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name.startswith("auto"):  # auto, or auto:option=value+option=value (variants)
            return AutoSampler(seed=seed, n_trials=n_trials, **_options(name.partition(":")[2]))
        if name == "tpe":  # Optuna's default, as its tutorial uses it
            return optuna.samplers.TPESampler(seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(name)


def _options(text: str) -> dict[str, Any]:
    """``option=value+option=value`` (a variant's AutoSampler options) as keyword arguments."""
    opts = dict(kv.split("=") for kv in text.split("+") if kv)
    return {k: (int(v) if v.isdigit() else float(v)) for k, v in opts.items()}


# -- tasks ------------------------------------------------------------------------------------

class BbobTask:
    kind = "bbob"
    direction = "minimize"

    def __init__(self, fid: int, dim: int, noise: str = "none") -> None:
        self.fid, self.dim, self.noise = fid, dim, noise
        self.name = f"f{fid:02d}-{NAMES[fid]}-d{dim}" + ("" if noise == "none" else f"-{noise}")

    def objective(self, seed: int) -> tuple[Callable[[Any], float], Callable[[dict[str, Any]], float]]:
        f = Bbob(self.fid, self.dim, instance=1, noise=self.noise, noise_seed=seed)

        def run(trial: Any) -> float:
            return f(np.array([trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(self.dim)]))

        def clean(params: dict[str, Any]) -> float:  # the noise-free value judges the incumbent
            return f.value(np.array([params[f"x{i}"] for i in range(self.dim)]))

        return run, clean

    def config_space(self) -> Any:
        """The same box as a ConfigSpace (for the optimizers outside Optuna)."""
        import ConfigSpace as CS

        cs = CS.ConfigurationSpace()
        cs.add([CS.Float(f"x{i}", (-5.0, 5.0)) for i in range(self.dim)])
        return cs


class YahpoTask:
    kind = "yahpo"

    def __init__(self, scenario: str, instance: str, data: str, share: float = 1.0) -> None:
        self.scenario, self.instance, self.data = scenario, instance, data
        self.share = share  # of the training data (trainsize), or of the epochs where those are the fidelity
        self.name = f"{scenario}-{instance}"
        self._bench: Any = None

    def earlier(self, share: float = 0.5) -> YahpoTask:
        """The same data set at a smaller fidelity: half its training rows (rbv2, iaml: the data
        before it grew) or, for lcbench, half its epochs (a run with a shorter training)."""
        return YahpoTask(self.scenario, self.instance, self.data, share)

    def related(self) -> YahpoTask:
        """The next instance of the same scenario (a related task for warm starts)."""
        instances = [str(i) for i in self.bench().instances]
        return YahpoTask(self.scenario, instances[(instances.index(self.instance) + 1) % len(instances)], self.data)

    def bench(self) -> Any:
        if self._bench is None:
            self._bench = open_yahpo(self.data, self.scenario)
            self._bench.set_instance(self.instance)
        return self._bench

    @property
    def direction(self) -> str:
        return "minimize" if self.target()[1] else "maximize"

    def target(self) -> tuple[str, bool]:
        """The scenario's target metric and whether lower is better."""
        return {"lcbench": ("val_accuracy", False), "rbv2_xgboost": ("acc", False),
                "rbv2_rpart": ("acc", False), "iaml_glmnet": ("mmce", True)}[self.scenario]

    def objective(self, seed: int) -> tuple[Callable[[Any], float], Callable[[dict[str, Any]], float]]:
        bench = self.bench()
        metric, _ = self.target()
        space = bench.get_opt_space(drop_fidelity_params=True)
        fidelity = {p.name: p.upper for p in bench.get_fidelity_space().get_hyperparameters()
                    if hasattr(p, "upper")}
        if self.share != 1.0:
            if "trainsize" in fidelity:
                fidelity["trainsize"] *= self.share
            elif "epoch" in fidelity:
                fidelity["epoch"] = max(1, round(fidelity["epoch"] * self.share))
            else:
                raise ValueError(f"{self.scenario}: no trainsize or epoch fidelity to share")
        fixed = {"task_id": self.instance} if "task_id" in bench.config.hp_names else {}
        if "OpenML_task_id" in bench.config.hp_names:
            fixed = {"OpenML_task_id": self.instance}
        params = [p for p in space.get_hyperparameters() if p.name not in fixed]

        def config_of(trial: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for p in params:
                if not _active(space, p.name, out):
                    continue
                out[p.name] = _suggest(trial, p)
            return out

        def evaluate(config: dict[str, Any]) -> float:
            res = bench.objective_function({**config, **fixed, **fidelity}, seed=0)
            return float(res[0][metric])

        def run(trial: Any) -> float:
            return evaluate(config_of(trial))

        return run, lambda params: evaluate(params)

    def config_space(self) -> Any:
        """YAHPO's search space without its fidelity and instance parameters (constants dropped:
        the objective adds them), conditions kept, as a ConfigSpace (for the optimizers outside
        Optuna)."""
        import ConfigSpace as CS

        space = self.bench().get_opt_space(drop_fidelity_params=True)
        drop = {"task_id", "OpenML_task_id"} | {p.name for p in space.get_hyperparameters()
                                               if type(p).__name__ == "Constant"}
        cs = CS.ConfigurationSpace()
        cs.add([p for p in space.get_hyperparameters() if p.name not in drop])
        conditions = [c for c in space.get_conditions() if c.child.name not in drop and c.parent.name not in drop]
        if conditions:
            cs.add(conditions)
        return cs


def _active(space: Any, name: str, values: dict[str, Any]) -> bool:
    for cond in space.get_parent_conditions_of(name) if hasattr(space, "get_parent_conditions_of") else []:
        parent = cond.parent.name
        if parent not in values:
            return False
        allowed = getattr(cond, "values", None) or [cond.value]
        if values[parent] not in allowed:
            return False
    return True


def _suggest(trial: Any, p: Any) -> Any:
    kind = type(p).__name__
    if kind == "CategoricalHyperparameter":
        return trial.suggest_categorical(p.name, list(p.choices))
    if kind == "Constant":
        return p.value
    if kind == "OrdinalHyperparameter":
        return trial.suggest_categorical(p.name, list(p.sequence))
    if "Integer" in kind:
        return trial.suggest_int(p.name, int(p.lower), int(p.upper), log=bool(p.log))
    return trial.suggest_float(p.name, float(p.lower), float(p.upper), log=bool(p.log))


def open_yahpo(data: str, scenario: str) -> Any:
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    os.environ.setdefault("YAHPO_LOCAL_CONFIG", str(out / "yahpo_gym.yaml"))
    warnings.filterwarnings("ignore", category=UserWarning)  # ConfigSpace 1.x on yahpo's 0.x files
    import ConfigSpace

    if not hasattr(ConfigSpace.ConfigurationSpace, "_sort_hyperparameters"):
        ConfigSpace.ConfigurationSpace._sort_hyperparameters = lambda self: None
    from yahpo_gym import BenchmarkSet, local_config

    local_config.init_config()
    local_config.set_data_path(data)
    return BenchmarkSet(scenario)


def yahpo_tasks(data: str, scenarios: list[str], per: int) -> list[YahpoTask]:
    tasks = []
    for sc in scenarios:
        instances = list(open_yahpo(data, sc).instances)
        step = max(1, len(instances) // per)
        tasks += [YahpoTask(sc, str(i), data) for i in instances[::step][:per]]
    return tasks


# -- one run ----------------------------------------------------------------------------------

WARM = ("auto+warm", "auto+transfer", "auto+update", "auto+update-transfer")
_SOURCES: dict[tuple[str, float, int, int], list[dict[str, Any]]] = {}  # per process: variants share a source


def _source_trials(source: Any, seed: int, n_trials: int) -> list[dict[str, Any]]:
    """The finished trials of an auto study on ``source`` (the related task), as history."""
    import optuna

    key = (source.name, source.share, seed, n_trials)
    if key not in _SOURCES:
        src = optuna.create_study(sampler=make_sampler("auto", seed, n_trials), direction=source.direction)
        src.optimize(source.objective(seed)[0], n_trials=n_trials)
        if len(_SOURCES) >= 4:  # jobs of one (task, seed) come together
            _SOURCES.clear()
        _SOURCES[key] = [{"params": t.params, "value": t.value} for t in src.trials if t.value is not None]
    return _SOURCES[key]


def one_run(job: tuple[Any, int, str, int]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task, seed, sampler_name, n_trials = job
    run, clean = task.objective(seed)
    external = None
    base_name, _, options = sampler_name.partition(":")  # auto+warm:n_startup=5 (options as for auto)
    if base_name in WARM:  # warm start from a finished 100-trial study on a related task: another data
        # set of the scenario, or (update) this one at half its fidelity
        source = task.earlier() if base_name.startswith("auto+update") else task.related()
        src = _source_trials(source, seed, n_trials)
        from honing.tune import AutoSampler

        kw = _options(options)
        if base_name.endswith("transfer"):  # and every trial of it in the model
            kw["history"] = src
        done = sorted(src, key=lambda t: t["value"] if source.direction == "minimize" else -t["value"])
        sampler = AutoSampler(seed=seed, n_trials=n_trials, start=[t["params"] for t in done[:3]], **kw)
    elif sampler_name == "auto+portfolio":  # the portfolio learned without this task (bench/learn_portfolio.py)

        from honing.tune import AutoSampler, list_portfolios, portfolio
        from honing.tune._experience import _portfolios

        start = []
        if task.scenario in list_portfolios():  # none for iaml_glmnet (4 instances: nothing left to learn on)
            if task.instance in _portfolios()[task.scenario]["learned_on"]:
                raise SystemExit(f"{task.name} was learned on: run with the held-out instances (--instances 5)")
            start = portfolio(task.scenario)
        sampler = AutoSampler(seed=seed, n_trials=n_trials, start=start)
    elif sampler_name in EXTERNAL:  # asked outside Optuna, its values enqueued into the study
        sampler = optuna.samplers.RandomSampler(seed=seed)
        external = make_external(sampler_name, task.config_space(), seed, n_trials, task.direction == "minimize")
    else:
        sampler = make_sampler(sampler_name, seed, n_trials)
    study = optuna.create_study(sampler=sampler, direction=task.direction)
    spent: list[float] = []
    values: list[float] = []
    best, best_clean = None, math.nan
    sign = 1 if task.direction == "minimize" else -1
    for _ in range(n_trials):
        t0 = time.perf_counter()
        if external is not None:
            study.enqueue_trial(external.ask())
        trial = study.ask()
        value = run(trial)  # the parameters are suggested inside: their time counts as the sampler's
        if external is not None:
            external.tell(value)
        spent.append(time.perf_counter() - t0)
        study.tell(trial, value)
        if best is None or sign * value < sign * best:
            best = value
            best_clean = clean(trial.params) if task.kind == "bbob" and getattr(task, "noise", "none") != "none" \
                else value
        values.append(best_clean)
    return {"task": task.name, "kind": task.kind, "seed": seed, "sampler": sampler_name, "incumbent": values,
            "seconds": spent, "direction": task.direction}


# -- the report -------------------------------------------------------------------------------

def task_regret(rs: list[dict[str, Any]]) -> tuple[dict[int, np.ndarray], float]:
    """One task's runs: each run's regret curve (by ``id`` of the run; BBOB ``f(incumbent)``,
    YAHPO the best value any of ``rs`` found minus the incumbent's) and the task's scale, random
    search's median regret at trial 10 (1 without random runs or when it is 0)."""
    if rs[0]["kind"] == "bbob":
        regret = {id(r): np.asarray(r["incumbent"], dtype=float) for r in rs}
    else:
        sign = 1 if rs[0]["direction"] == "minimize" else -1
        ref = min(sign * v for r in rs for v in r["incumbent"])
        regret = {id(r): sign * np.asarray(r["incumbent"], dtype=float) - ref for r in rs}
    rand10 = [regret[id(r)][9] for r in rs if r["sampler"] == "random"]
    scale = statistics.median(rand10) if rand10 else 1.0
    return regret, (scale if scale > 1e-12 else 1.0)


def summarise(runs: list[dict[str, Any]], samplers: list[str], n_trials: int) -> dict[str, Any]:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    checkpoints = [c for c in CHECKPOINTS if c <= n_trials]
    table: dict[str, dict[int, list[float]]] = {s: {c: [] for c in checkpoints} for s in samplers}
    ranks: dict[str, list[float]] = {s: [] for s in samplers}
    versus: dict[str, dict[str, list[int]]] = {s: {"tpe": [0, 0, 0], "random": [0, 0, 0]} for s in samplers}
    per_task: dict[str, dict[str, float]] = {}
    for task, rs in by_task.items():
        regret, scale = task_regret(rs)
        final: dict[str, list[float]] = {s: [] for s in samplers}
        for r in rs:
            for c in checkpoints:
                table[r["sampler"]][c].append(float(regret[id(r)][c - 1] / scale))
            final[r["sampler"]].append(float(regret[id(r)][n_trials - 1] / scale))
        seeds = sorted({r["seed"] for r in rs})
        for seed in seeds:
            at = {r["sampler"]: regret[id(r)][n_trials - 1] for r in rs if r["seed"] == seed}
            order = sorted(at.values())
            for s, v in at.items():  # average rank on ties
                ranks[s].append(float(np.mean([i + 1 for i, o in enumerate(order) if o == v])))
        med = {s: statistics.median(v) for s, v in final.items() if v}
        per_task[task] = med
        for s in samplers:
            for other in ("tpe", "random"):
                if s in med and other in med:
                    a, b = med[s], med[other]
                    versus[s][other][0 if a < b * 0.99 else (1 if a <= b * 1.01 else 2)] += 1
    warm = {}
    for variant in samplers:  # trials a warm start needs to reach cold's final median
        if not variant.startswith(WARM) or "auto" not in samplers:
            continue
        reached, needed = 0, []
        for task, rs in by_task.items():
            rs_cold = [r for r in rs if r["sampler"] == "auto"]
            rs_warm = [r for r in rs if r["sampler"] == variant]
            sign = 1 if rs[0]["direction"] == "minimize" else -1
            goal = statistics.median(sign * r["incumbent"][-1] for r in rs_cold)
            curve = [statistics.median(sign * r["incumbent"][i] for r in rs_warm) for i in range(n_trials)]
            first = next((i + 1 for i, v in enumerate(curve) if v <= goal), None)
            needed.append(first if first is not None else f">{n_trials}")
            reached += first is not None and first <= 30
        warm[variant] = {"tasks_reaching_cold_final_within_30": reached, "tasks": len(by_task),
                         "trials_needed_median_curve": dict(zip(by_task, needed))}
    return {"checkpoints": checkpoints, "warm_start": warm,
            "mean_normalised_regret": {s: {c: float(np.mean(v)) for c, v in table[s].items() if v} for s in samplers},
            "mean_rank": {s: float(np.mean(v)) for s, v in ranks.items() if v},
            "versus": versus, "per_task_median_final": per_task}


class MixedTask:
    """A synthetic space shaped like rbv2_xgboost's (for ``--cost``): a booster choice, a
    categorical, log and int parameters, 9 of 14 conditional on the booster; a smooth bowl plus
    an offset per choice (about 20 us per evaluation)."""

    kind, direction, name = "mixed", "minimize", "mixed-xgboost-like"

    def objective(self, seed: int) -> tuple[Callable[[Any], float], Callable[[dict[str, Any]], float]]:
        def run(trial: Any) -> float:
            booster = trial.suggest_categorical("booster", ["gblinear", "gbtree", "dart"])
            impute = trial.suggest_categorical("impute", ["mean", "median", "hist"])
            u = [math.log10(trial.suggest_float("alpha", 1e-3, 1e3, log=True)) / 3,
                 math.log10(trial.suggest_float("lambda", 1e-3, 1e3, log=True)) / 3,
                 math.log2(trial.suggest_int("nrounds", 8, 4096, log=True)) / 12,
                 trial.suggest_float("subsample", 0.1, 1.0)]
            if booster != "gblinear":
                u += [math.log10(trial.suggest_float("eta", 1e-4, 1.0, log=True)) / 4 + 1,
                      trial.suggest_int("max_depth", 1, 15) / 15,
                      math.log10(trial.suggest_float("min_child_weight", 1.0, 128.0, log=True)) / 2.1,
                      trial.suggest_float("colsample_bytree", 0.01, 1.0),
                      trial.suggest_float("colsample_bylevel", 0.01, 1.0),
                      math.log10(trial.suggest_float("gamma", 1e-4, 7.0, log=True)) / 4 + 1]
            if booster == "dart":
                u += [trial.suggest_float("rate_drop", 0.0, 1.0), trial.suggest_float("skip_drop", 0.0, 1.0)]
            offset = {"gblinear": 1.0, "gbtree": 0.2, "dart": 0.0}[booster] + {"mean": 0.1, "median": 0.0, "hist": 0.2}[impute]
            return offset + float(sum((v - 0.6) ** 2 for v in u))

        return run, lambda params: math.nan


def cost(samplers: list[str]) -> int:
    """Milliseconds per trial (ask, the suggestions, tell; the objective is ~20 us) in each
    window of 100 trials of a 500-trial study, on BBOB f15 in 10 dimensions (all numbers) and on
    ``MixedTask`` (categoricals and conditions, as rbv2_xgboost)."""
    rows = {}
    for task in (BbobTask(15, 10), MixedTask()):
        for name in samplers:
            r = one_run((task, 0, name, 500))
            key = f"{name} {task.name}"
            rows[key] = {f"ms_{i + 1}_{i + 100}": 1000 * float(np.mean(r["seconds"][i:i + 100])) for i in range(0, 500, 100)}
            print(f"{key:<30} ms/trial by 100-trial window: " + "  ".join(f"{v:6.1f}" for v in rows[key].values()),
                  flush=True)
    print(f"wrote {save('sampler_cost', {'machine': machine(), 'rows': rows})}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", choices=["bbob", "yahpo", "all"], default="bbob")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 (to add "
                    "seeds to an earlier run: merge the files, as bench/regret_ci.py does)")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--dims", default="2,5,10")
    ap.add_argument("--functions", default="1-24")
    ap.add_argument("--noise", choices=["none", "moderate", "severe"], default="none")
    ap.add_argument("--samplers", default="auto,tpe,random,cmaes")
    ap.add_argument("--scenarios", default="lcbench,rbv2_xgboost,rbv2_rpart,iaml_glmnet")
    ap.add_argument("--instances", type=int, default=3, help="YAHPO instances per scenario")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "yahpo"))
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="f1, f8, f15, f21 at d=2 and 5, 3 seeds, 50 trials")
    ap.add_argument("--tag", default="")
    ap.add_argument("--cost", action="store_true", help="the sampler's time per trial in each 100-trial window of "
                    "a 500-trial study (BBOB f15 in 10 dimensions, and a mixed conditional space; one seed)")
    args = ap.parse_args()
    check_env()
    if args.cost:
        return cost(args.samplers.split(","))
    if args.quick:
        args.seeds, args.trials, args.dims, args.functions = 3, 50, "2,5", "1,8,15,21"
    lo_hi = args.functions.split("-")
    fids = (list(range(int(lo_hi[0]), int(lo_hi[1]) + 1)) if len(lo_hi) == 2
            else [int(f) for f in args.functions.split(",")])
    samplers = args.samplers.split(",")
    tasks: list[Any] = []
    if args.suite in ("bbob", "all"):
        tasks += [BbobTask(f, int(d), args.noise) for d in args.dims.split(",") for f in fids]
    if args.suite in ("yahpo", "all"):
        tasks += yahpo_tasks(args.data, args.scenarios.split(","), args.instances)
    all_samplers = list(dict.fromkeys([*samplers, "random"]))  # random search: the normaliser
    jobs = [(t, seed, s, args.trials) for t in tasks for seed in range(args.first_seed, args.first_seed + args.seeds)
            for s in all_samplers]
    start = time.time()
    print(f"{len(tasks)} tasks x {args.seeds} seeds x {len(set(j[2] for j in jobs))} samplers = {len(jobs)} runs",
          flush=True)
    with mp.get_context("spawn").Pool(args.processes) as pool:
        runs = []
        for i, r in enumerate(pool.imap_unordered(one_run, jobs, chunksize=4)):
            runs.append(r)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{len(jobs)} runs, {time.time() - start:.0f} s", flush=True)
    summary = summarise(runs, all_samplers, args.trials)
    print(f"\nmean normalised regret (regret / random search's median regret at trial 10, per task); "
          f"{len(tasks)} tasks x {args.seeds} seeds; {time.time() - start:.0f} s")
    print(f"{'sampler':<10}" + "".join(f"{'@' + str(c):>10}" for c in summary["checkpoints"]) +
          f"{'rank':>8}{'vs tpe w/t/l':>16}{'vs random w/t/l':>18}{'ms/trial':>10}")
    for s in all_samplers:
        row = summary["mean_normalised_regret"].get(s, {})
        ms = 1000 * float(np.mean([np.mean(r["seconds"]) for r in runs if r["sampler"] == s]))
        vt, vr = summary["versus"][s]["tpe"], summary["versus"][s]["random"]
        print(f"{s:<10}" + "".join(f"{row.get(c, math.nan):>10.3f}" for c in summary["checkpoints"]) +
              f"{summary['mean_rank'].get(s, math.nan):>8.2f}{'/'.join(map(str, vt)):>16}"
              f"{'/'.join(map(str, vr)):>18}{ms:>10.1f}")
    for variant, w in summary["warm_start"].items():
        print(f"{variant} reached cold auto's median 100-trial result within 30 trials on "
              f"{w['tasks_reaching_cold_final_within_30']}/{w['tasks']} tasks; trials needed by task: "
              f"{w['trials_needed_median_curve']}")
    noise = f"_{args.noise}" if args.noise != "none" else ""
    name = f"sampler_suite_{args.suite}{noise}" + (f"_{args.tag}" if args.tag else "")
    path = save(name, {"machine": machine(), "args": vars(args), "summary": summary,
                       "runs": [{k: v for k, v in r.items() if k != "seconds"} | {"ms_per_trial": 1000 * float(
                           np.mean(r["seconds"]))} for r in runs]})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
