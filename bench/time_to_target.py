"""Time to target: honing's default search against Optuna's tutorial default, Optuna TPE with
Hyperband pruning, and random search.

The figure is the wall time from the start of a search until the best validation accuracy
found so far first reaches a fixed target. Three strategies, the same search space, data
splits (one ``honing.data.load`` call gives the tensors to all three), maximum epochs and
threads (1 torch thread, one training process at a time):

  A  honing    what ``honing run`` does with a recipe that leaves ``tune.sampler`` and
               ``tune.pruner`` at their defaults (auto + auto): ``honing.tune.optimize`` with
               ``honing.pipeline``'s ``RecipeObjective``, sampler and pruner made by name from
               the recipe exactly as ``honing.pipeline.run`` makes them, default journal
               storage. The recipe keeps early stopping of training as
               ``examples/digits-mlp.yaml`` does; a trial's value is its best epoch's validation
               accuracy (what RecipeObjective returns). The final retrain/test is not run.
  B  optuna    what Optuna's tutorial has a user write: ``optuna.create_study(direction=
               "maximize", sampler=TPESampler(seed=s))``, an objective with ``suggest_*`` calls,
               a plain torch model (``nn.Sequential``), a hand-written loop slicing pre-built
               tensors, AdamW, fixed epochs, nothing reported (so no pruning, no early
               stopping); it returns the final epoch's validation accuracy. The loop evaluates
               the validation split after every epoch (to keep the curve); that evaluation time
               is recorded and a figure without it is given too.
  D  hyperband B with each epoch's validation accuracy reported to Optuna's HyperbandPruner
               (min_resource 1, max_resource the epochs); a pruned trial counts as no result.
  C  random    honing with ``sampler: random, pruner: none`` (same trainer, early stopping and
               best-epoch value as A): what TPE + ASHA add over random search inside honing.

The clock starts after data loading and imports, right before the study is created; a
target's time is when the first trial whose value reaches it returned from the objective. A
workload may list several targets; a run stops at the last one (or at its cap). Each run has
a wall-clock cap and a trial cap; a run that misses the target is censored ("> cap"). Each
(workload, strategy, seed) runs in its own subprocess with OMP_NUM_THREADS=1 and the
allocator variables of bench/run.sh; the order of strategies alternates per seed (A B C, C B A).

usage: bench/run.sh bench/time_to_target.py [--seeds 5] [--workloads digits,fmnist] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import MALLOC_ENV, OUT, check_env, machine, median, save

HERE = Path(__file__).resolve().parent
STRATEGIES = ("honing", "optuna", "hyperband", "random")
LABEL = {"honing": "A honing (defaults: auto + auto)", "optuna": "B optuna tutorial (tpe, no pruning)",
         "hyperband": "D optuna tpe + hyperband", "random": "C random (honing, no pruning)"}

LR = (3.0e-4, 3.0e-2)
WD = (1.0e-5, 1.0e-1)
DROPOUT = (0.0, 0.4)
BATCH = [32, 64, 128]

WORKLOADS: dict[str, dict[str, Any]] = {
    "digits": {
        "title": "digits MLP",
        "data": {"source": "sklearn:digits", "val_size": 0.15, "test_size": 0.15, "scale": "standard"},
        "model": {"name": "mlp", "hidden": [128, 64], "dropout": 0.1},
        "width_key": "hidden",
        "widths": [[64], [128], [256, 128], [128, 64]],
        "epochs": 40,
        "patience": 8,
        "targets": [0.97, 0.98],  # reported each; a run stops at the last (or at the cap)
        "cap_s": 60.0,
        "max_trials": 200,
    },
    "fmnist": {
        "title": "Fashion-MNIST CNN",
        # 4,667 rows kept (stratified): 667 of the fixed test set, 4,000 training rows of which
        # 25% (1,000) are the validation split -> 3,000 train / 1,000 validation. (6,000 / 2,000
        # with 10 epochs did not fit the 25-minute budget: 2-5 s per epoch on a shared 2-core box.)
        "data": {"source": "fashion-mnist", "val_size": 0.25, "limit": 4667, "scale": "standard"},
        "model": {"name": "cnn", "channels": [8, 16, 32], "dropout": 0.1, "batch_norm": True},
        "width_key": "channels",
        "widths": [[16, 32], [8, 16, 32], [16, 32, 64]],
        "epochs": 8,
        "patience": 3,
        "targets": [0.79, 0.82],  # reported each; a run stops at the last (or at the cap)
        "cap_s": 100.0,
        "max_trials": 60,
    },
}


# --------------------------------------------------------------------------------- recipes

def honing_recipe(wl: dict[str, Any], *, strategy: str, seed: int) -> dict[str, Any]:
    wk = wl["width_key"]
    tune: dict[str, Any] = {
        "n_trials": wl["max_trials"],
        "metric": "val_accuracy",
        "final": "retrain",
        "space": {
            "training.optimizer.lr": {"float": list(LR), "log": True},
            "training.optimizer.weight_decay": {"float": list(WD), "log": True},
            f"model.{wk}": {"choice": wl["widths"]},
            "model.dropout": {"float": list(DROPOUT)},
            "training.batch_size": {"choice": BATCH},
        },
    }
    if strategy == "random":
        tune.update(sampler="random", pruner="none")
    # strategy "honing": sampler and pruner left out -> the recipe's defaults
    return {
        "name": f"ttt-{strategy}-{seed}",
        "seed": seed,
        "data": dict(wl["data"]),
        "model": dict(wl["model"]),
        "training": {
            "epochs": wl["epochs"],
            "batch_size": 64,
            "optimizer": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01},
            "early_stopping": {"monitor": "val_loss", "patience": wl["patience"]},
            "threads": 1,
        },
        "tune": tune,
    }


# ------------------------------------------------------------------- child: one search run

class _Stop(KeyboardInterrupt):
    """Ends honing's search loop once the target is reached or the cap has passed."""


class _TimedReporter:
    """honing's Reporter, with the epoch times kept and should_prune() true past the cap."""

    def __init__(self, inner: Any, deadline: float) -> None:
        self._inner, self._deadline = inner, deadline
        self.capped = False
        self.number, self.seed = inner.number, inner.seed
        self.storage_s = 0.0  # time in the study's storage: report, should_prune, set

    def report(self, value: float, step: int) -> None:
        t = time.perf_counter()
        self._inner.report(value, step)
        self.storage_s += time.perf_counter() - t

    def should_prune(self) -> bool:
        if time.perf_counter() > self._deadline:
            self.capped = True
            return True
        t = time.perf_counter()
        out = self._inner.should_prune()
        self.storage_s += time.perf_counter() - t
        return out

    def set(self, key: str, value: Any) -> None:
        t = time.perf_counter()
        self._inner.set(key, value)
        self.storage_s += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Timed:
    """Wraps RecipeObjective: when each trial starts and returns, its value and epochs."""

    def __init__(self, objective: Any, *, t0: float, cap_s: float, target: float) -> None:
        self.objective, self.t0, self.cap_s, self.target = objective, t0, cap_s, target
        self.trials: list[dict[str, Any]] = []
        self.done = False

    def __call__(self, params: dict[str, Any], reporter: Any) -> Any:
        from honing.tune import Pruned

        start = time.perf_counter()
        if self.done or start - self.t0 > self.cap_s:
            raise _Stop
        timed = _TimedReporter(reporter, self.t0 + self.cap_s)
        rec: dict[str, Any] = {"number": int(reporter.number), "start": start - self.t0, "params": params}
        self.trials.append(rec)
        try:
            value = self.objective(params, timed)
        except Pruned:
            rec.update(end=time.perf_counter() - self.t0, state="capped" if timed.capped else "pruned",
                       value=None, epochs=len(reporter.intermediate), curve=list(reporter.intermediate.values()),
                       storage_s=timed.storage_s)
            raise
        rec.update(end=time.perf_counter() - self.t0, state="complete", value=float(value),
                   epochs=len(reporter.intermediate), curve=list(reporter.intermediate.values()),
                   storage_s=timed.storage_s)
        if rec["value"] >= self.target:
            self.done = True
        return value


def run_honing(wl: dict[str, Any], strategy: str, seed: int) -> dict[str, Any]:
    """A or C: the search half of honing.pipeline.run, made the way run() makes it."""
    from honing.pipeline import RecipeObjective
    from honing.pipeline._build import load_data
    from honing.recipe import parse_recipe
    from honing.tune import create_pruner, create_sampler, optimize

    rec = parse_recipe(honing_recipe(wl, strategy=strategy, seed=seed))
    r = rec.to_dict()
    tune = r["tune"]
    data = load_data(rec)  # loaded before the clock starts, as run() does before the search
    directions = rec.directions(data.task)
    with tempfile.TemporaryDirectory(prefix="honing-ttt-") as run_dir:
        t0 = time.perf_counter()
        sampler = create_sampler(tune["sampler"], seed=r["seed"], space=rec.space, directions=directions,
                                 n_trials=tune.get("n_trials"))
        pruner = create_pruner(tune["pruner"], max_epochs=r["training"]["epochs"], n_trials=tune.get("n_trials"),
                               directions=directions)
        objective = _Timed(RecipeObjective(rec, run_dir, threads=1, save_weights=False, data=data),
                           t0=t0, cap_s=wl["cap_s"], target=max(wl["targets"]))
        try:
            optimize(objective, study_name=r["name"], storage=None, space=rec.space, directions=directions,
                     sampler=sampler, pruner=pruner, n_trials=tune["n_trials"], timeout=None, workers=1,
                     seed=r["seed"], base=r, progress=False, run_dir=run_dir)
        except _Stop:
            pass
        wall = time.perf_counter() - t0
    return {"sampler": tune["sampler"], "pruner": tune["pruner"], "n_trials": tune["n_trials"],
            "trials": objective.trials, "wall_s": wall,
            "rows": {"train": len(data.train), "val": len(data.val)}}


def plain_model(wl: dict[str, Any], widths: list[int], dropout: float, input_shape: tuple[int, ...], k: int):
    from torch import nn

    layers: list[nn.Module] = []
    if wl["model"]["name"] == "mlp":
        layers.append(nn.Flatten())
        d = math.prod(input_shape)
        for w in widths:
            layers += [nn.Linear(d, w), nn.ReLU(), nn.Dropout(dropout)]
            d = w
        layers.append(nn.Linear(d, k))
    else:  # conv 3x3 'same' -> [batch norm] -> relu -> maxpool 2 -> dropout; global average pool; linear
        c, bn = input_shape[0], bool(wl["model"].get("batch_norm"))
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=not bn), *([nn.BatchNorm2d(w)] if bn else []), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True), nn.Dropout(dropout)]
            c = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, k)]
    return nn.Sequential(*layers)


def run_optuna(wl: dict[str, Any], seed: int, hyperband: bool = False) -> dict[str, Any]:
    """B: the Optuna tutorial's study with a hand-written torch loop; D (``hyperband``): the
    same, reporting each epoch's validation accuracy to Optuna's HyperbandPruner (min_resource
    1, max_resource the epochs), as Optuna's pruning tutorial does."""
    import optuna
    import torch
    import torch.nn.functional as F

    from honing.pipeline._build import load_data
    from honing.recipe import parse_recipe

    r = honing_recipe(wl, strategy="optuna", seed=seed)
    data = load_data(parse_recipe(r))  # the same call (and tensors) as honing's
    x, y, xv, yv = data.train.x, data.train.y, data.val.x, data.val.y
    n, k, shape = x.shape[0], data.num_outputs, tuple(data.input_shape)
    epochs, cap_s, target = wl["epochs"], wl["cap_s"], max(wl["targets"])
    choices = {"-".join(map(str, w)): w for w in wl["widths"]}
    trials: list[dict[str, Any]] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def evaluate(model):
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(xv[i:i + 1024]) for i in range(0, xv.shape[0], 1024)])
        return (out.argmax(1) == yv).float().mean().item()

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        lr = trial.suggest_float("lr", *LR, log=True)
        wd = trial.suggest_float("weight_decay", *WD, log=True)
        widths = choices[trial.suggest_categorical(wl["width_key"], list(choices))]
        dropout = trial.suggest_float("dropout", *DROPOUT)
        bs = trial.suggest_categorical("batch_size", BATCH)
        rec: dict[str, Any] = {"number": trial.number, "start": start - t0, "params": dict(trial.params)}
        trials.append(rec)
        torch.manual_seed(seed * 1000 + trial.number)
        g = torch.Generator().manual_seed(seed * 1000 + trial.number)
        model = plain_model(wl, widths, dropout, shape, k)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        curve, eval_s = [], 0.0
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            te = time.perf_counter()
            curve.append(evaluate(model))
            eval_s += time.perf_counter() - te
            if hyperband:
                trial.report(curve[-1], len(curve))
                if trial.should_prune():  # a pruned trial returns nothing: its model is not a result
                    rec.update(end=time.perf_counter() - t0, state="pruned", value=None, epochs=len(curve),
                               curve=curve, eval_s=eval_s)
                    raise optuna.TrialPruned()
            if time.perf_counter() - t0 > cap_s:
                rec.update(end=time.perf_counter() - t0, state="capped", value=None, epochs=len(curve),
                           curve=curve, eval_s=eval_s)
                raise optuna.TrialPruned("past the cap")
        # the tutorial evaluates once, after the last epoch: the other evaluations are extra
        extra = eval_s * (epochs - 1) / epochs
        rec.update(end=time.perf_counter() - t0, state="complete", value=curve[-1], epochs=len(curve),
                   curve=curve, eval_s=eval_s, extra_eval_s=extra)
        return curve[-1]

    def stop(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if (trials and trials[-1].get("value") is not None and trials[-1]["value"] >= target) \
                or time.perf_counter() - t0 > cap_s:
            study.stop()

    t0 = time.perf_counter()
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs) if hyperband else None
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    study.optimize(objective, n_trials=wl["max_trials"], callbacks=[stop])
    wall = time.perf_counter() - t0
    return {"sampler": "optuna.samplers.TPESampler (defaults)",
            "pruner": "HyperbandPruner(min_resource=1)" if hyperband else "none (nothing reported)",
            "n_trials": wl["max_trials"], "trials": trials, "wall_s": wall,
            "rows": {"train": n, "val": int(xv.shape[0])}}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    wl = spec["workload"]
    if spec["strategy"] in ("optuna", "hyperband"):
        out = run_optuna(wl, spec["seed"], hyperband=spec["strategy"] == "hyperband")
    else:
        out = run_honing(wl, spec["strategy"], spec["seed"])
    return {**out, "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- parent: summary

def reach(trials: list[dict[str, Any]], target: float, cap_s: float, value_key: str = "value",
          extra_key: str | None = None) -> dict[str, Any]:
    """When the best value so far first reached the target (None: censored), trials and epochs to it."""
    extra = 0.0
    for i, t in enumerate(trials):
        extra += t.get(extra_key, 0.0) if extra_key else 0.0
        v = t.get(value_key)
        if v is not None and v >= target and t["end"] <= cap_s:
            return {"time_s": t["end"] - extra, "trials": i + 1, "epochs": sum(u["epochs"] for u in trials[:i + 1]),
                    "pruned": sum(u["state"] == "pruned" for u in trials[:i + 1])}
    return {"time_s": None, "trials": len(trials), "epochs": sum(u["epochs"] for u in trials),
            "pruned": sum(u["state"] == "pruned" for u in trials)}


def censored_median(times: list[float | None]) -> float:
    return median([math.inf if t is None else t for t in times])


def fmt_time(t: float | None, cap: float) -> str:
    return f"> {cap:.0f} s" if t is None or math.isinf(t) else f"{t:.1f} s"


def ratio_bound(a: float, b: float, cap: float) -> str:
    """a / b with censored medians treated as '> cap' (a bound, not a value)."""
    if math.isinf(a) and math.isinf(b):
        return "n/a (both > cap)"
    if math.isinf(b):
        return f"< {a / cap:.2f}"
    if math.isinf(a):
        return f"> {cap / b:.2f}"
    return f"{a / b:.2f}"


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, **MALLOC_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.NamedTemporaryFile("r", suffix=".json") as f:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--out", f.name]
        proc = subprocess.run(cmd, env=env, cwd=str(HERE), timeout=timeout, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"child {spec['strategy']} seed {spec['seed']} failed:\n{proc.stderr[-3000:]}")
        return json.loads(Path(f.name).read_text())


def summarize(name: str, wl: dict[str, Any], runs: dict[str, list[dict[str, Any]]], target: float) -> dict[str, Any]:
    cap = wl["cap_s"]
    out: dict[str, Any] = {"workload": name, "title": wl["title"], "target": target, "cap_s": cap,
                           "epochs": wl["epochs"], "strategies": {}}
    for s in STRATEGIES:
        per_seed = []
        for run in runs[s]:
            row = {"seed": run["seed"], **reach(run["trials"], target, cap),
                   "best_within_cap": max([t["value"] for t in run["trials"]
                                           if t.get("value") is not None and t["end"] <= cap], default=None)}
            if s == "optuna":
                for t in run["trials"]:
                    t["best_epoch_value"] = max(t["curve"]) if t["state"] == "complete" else None
                row["if_best_epoch"] = reach(run["trials"], target, cap, "best_epoch_value")
                row["without_extra_eval"] = reach(run["trials"], target, cap, extra_key="extra_eval_s")
            # time per epoch of the trials run, and time outside any trial
            done = [t for t in run["trials"] if "end" in t]
            in_trials = sum(t["end"] - t["start"] for t in done)
            epochs = sum(t["epochs"] for t in done)
            row["s_per_epoch"] = in_trials / epochs if epochs else None
            row["storage_s_per_epoch"] = (sum(t.get("storage_s", 0.0) for t in done) / epochs) if epochs else None
            row["between_trials_s"] = (done[-1]["end"] - in_trials) if done else None
            row["run_wall_s"] = run["wall_s"]
            per_seed.append(row)
        times = [r["time_s"] for r in per_seed]
        entry = {"label": LABEL[s], "sampler": runs[s][0]["sampler"], "pruner": runs[s][0]["pruner"],
                 "median_s": censored_median(times), "reached": sum(t is not None for t in times),
                 "median_trials": median([r["trials"] for r in per_seed]),
                 "median_epochs": median([r["epochs"] for r in per_seed]),
                 "median_s_per_epoch": median([r["s_per_epoch"] for r in per_seed if r["s_per_epoch"]]),
                 "per_seed": per_seed}
        if s == "optuna":
            entry["median_s_if_best_epoch"] = censored_median([r["if_best_epoch"]["time_s"] for r in per_seed])
            entry["median_s_without_extra_eval"] = censored_median([r["without_extra_eval"]["time_s"]
                                                                    for r in per_seed])
        out["strategies"][s] = entry
    st = out["strategies"]
    a, b, c = st["honing"]["median_s"], st["optuna"]["median_s"], st["random"]["median_s"]
    out["ratio_honing_optuna"] = ratio_bound(a, b, cap)
    out["ratio_honing_random"] = ratio_bound(a, c, cap)
    out["ratio_honing_hyperband"] = ratio_bound(a, st["hyperband"]["median_s"], cap)
    out["rows"] = runs["honing"][0]["rows"]
    for key in ("median_s", "median_s_if_best_epoch", "median_s_without_extra_eval"):
        for e in st.values():
            if key in e and math.isinf(e[key]):
                e[key] = None
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| workload (target, cap) | strategy | median time to target | reached | per-seed times | "
             "trials to target (median) | epochs to target (median) | s per epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        cap = res["cap_s"]
        for s in STRATEGIES:
            e = res["strategies"][s]
            seeds = ", ".join(fmt_time(r["time_s"], cap) for r in e["per_seed"])
            trials = "/".join(str(r["trials"]) for r in e["per_seed"])
            lines.append(f"| {res['title']} (val acc >= {res['target']}, cap {cap:.0f} s) | {e['label']} | "
                         f"**{fmt_time(e['median_s'], cap)}** | {e['reached']}/{len(e['per_seed'])} | {seeds} | "
                         f"{e['median_trials']:g} ({trials}) | {e['median_epochs']:g} | "
                         f"{e['median_s_per_epoch'] * 1e3:.0f} ms |")
    lines += ["", "| workload | target | honing / optuna-default | honing / optuna tpe+hyperband | honing / random | "
              "optuna (B) median if it returned its best epoch | B median without the per-epoch evaluations |",
              "|---|---|---|---|---|---|---|"]
    for res in results:
        cap, o = res["cap_s"], res["strategies"]["optuna"]
        lines.append(f"| {res['title']} | {res['target']} | **{res['ratio_honing_optuna']}** | "
                     f"{res['ratio_honing_hyperband']} | {res['ratio_honing_random']} | "
                     f"{fmt_time(o['median_s_if_best_epoch'], cap)} | {fmt_time(o['median_s_without_extra_eval'], cap)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workloads", default="digits,fmnist")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="for development; the table needs all")
    ap.add_argument("--cap-scale", type=float, default=1.0, help="multiply every wall-clock cap")
    ap.add_argument("--target", action="append", default=[], metavar="WORKLOAD=ACC",
                    help="override a workload's target (for choosing one; the table uses the defaults)")
    ap.add_argument("--quick", action="store_true", help="1 seed, caps of 15 s (a smoke run)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = child(json.loads(args.child))
        Path(args.out).write_text(json.dumps(result))
        return
    check_env()
    if args.quick:
        args.seeds = 1
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    strategies = [s.strip() for s in args.strategies.split(",")]
    t_all = time.perf_counter()
    results: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for name in names:
        wl = dict(WORKLOADS[name])
        wl["cap_s"] = 15.0 if args.quick else wl["cap_s"] * args.cap_scale
        for item in args.target:
            key, _, value = item.partition("=")
            if key == name:
                wl["targets"] = [float(value)]
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
        for seed in range(args.seeds):
            order = strategies if seed % 2 == 0 else strategies[::-1]
            for s in order:
                t = time.perf_counter()
                run = run_child({"workload": wl, "strategy": s, "seed": seed}, timeout=wl["cap_s"] * 3 + 120)
                run["seed"] = seed
                runs[s].append(run)
                hit = reach(run["trials"], max(wl["targets"]), wl["cap_s"])
                best = max([x["value"] for x in run["trials"] if x.get("value") is not None], default=float("nan"))
                print(f"{name:7s} seed {seed} {s:7s} time to {max(wl['targets'])}: {fmt_time(hit['time_s'], wl['cap_s']):>9s}"
                      f"  trials {hit['trials']:3d} (pruned {hit['pruned']:2d})  epochs {hit['epochs']:4d}  "
                      f"best {best:.4f}  [{time.perf_counter() - t:.0f} s with start-up; total "
                      f"{time.perf_counter() - t_all:.0f} s]", flush=True)
        raw[name] = {"workload": wl, "args": vars(args), "runs": runs}
        if set(strategies) == set(STRATEGIES):
            results += [summarize(name, wl, runs, target) for target in wl["targets"]]
    if results:
        print()
        print(table(results))
    # workloads not run this time keep their figures from the previous file (say which in "from_earlier")
    old_path = OUT / "time_to_target.json"
    old = json.loads(old_path.read_text()) if old_path.is_file() and set(names) != set(WORKLOADS) else {}
    kept = [r for r in old.get("results", []) if r["workload"] not in names]
    kept_raw = {k: v for k, v in old.get("raw", {}).items() if k not in names}
    for r in kept:  # files written before "raw" existed kept the runs in the results
        if "runs" in r:
            kept_raw.setdefault(r["workload"], {"workload": old.get("workloads", {}).get(r["workload"]),
                                                "args": old.get("args"), "runs": r.pop("runs")})
    path = save("time_to_target", {"machine": machine(), "args": vars(args), "total_wall_s": time.perf_counter() - t_all,
                                   "from_earlier": sorted({r["workload"] for r in kept}),
                                   "results": kept + results, "raw": {**kept_raw, **raw}})
    if kept:
        print("\nwith the figures kept from the earlier file:\n" + table(kept + results))
    print(f"wrote {path}  (total {time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
