"""The working process: a recipe in, stages in order, artifacts out.

``run``: load data -> search (Optuna through honing.tune) -> pick the best trial -> final
model (retrain on train+validation, or the best trial's weights) -> one evaluation on the
held-out test set -> ``results.json``, ``model/``, ``report.html``. ``train_once`` is the
same without the search. Re-running on the same output folder resumes the study.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from honing._core import ConfigError, DataError, atomic_write_text, set_threads
from honing.data import Dataset, Split
from honing.models import count_parameters
from honing.pipeline._artifacts import save_model, versions
from honing.pipeline._baselines import compare, fit_baselines, imbalance, primary_metric
from honing.pipeline._build import build_model, build_trainer, direction_of, load_data, metric_of
from honing.pipeline._objective import RecipeObjective, cached_data, release_data
from honing.pipeline._transfer import is_few_shot, is_transfer, transfer_results
from honing.tune import mask_password

RESULTS, REPORT, RECIPE_LOCK = "results.json", "report.html", "recipe.json"
# fields a re-run may change without starting another study
_BUDGET_FIELDS = ("n_trials", "timeout", "storage")


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    results: dict[str, Any]

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.results["test_metrics"]


def _as_recipe(recipe: Any) -> Any:
    from honing.recipe import Recipe, load_recipe, parse_recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, (str, Path)):
        return load_recipe(recipe)
    return parse_recipe(recipe)


def _overrides(recipe: Any, *, n_trials: int | None, timeout: float | None, seed: int | None) -> Any:
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if recipe.tune is not None:
        if n_trials is not None:
            changes["tune.n_trials"] = n_trials
        if timeout is not None:
            changes["tune.timeout"] = timeout
    return recipe.with_params(changes) if changes else recipe


def _named_data_errors(loader: Any, r: dict[str, Any], recipe: Any) -> Dataset:
    """``loader(r)``; a DataError names the recipe's data section (and its line, from a file)."""
    from honing.recipe import field_line

    try:
        return loader(r)
    except DataError as err:
        where = "data.source"
        if isinstance(recipe, (str, Path)):
            line = field_line(recipe, "data.source")
            where = f"{recipe}:{line}: data.source" if line else f"{recipe}: data.source"
        raise DataError(f"{where}: {err}") from None


def output_dir(recipe: dict[str, Any], out: str | Path | None) -> Path:
    if out is not None:
        return Path(out)
    configured = (recipe.get("output") or {}).get("dir")
    return Path(configured) if configured else Path("runs") / recipe["name"]


def _check_same_study(out: Path, recipe: dict[str, Any], *, bound: bool = True) -> bool:
    """A folder holds one study (or one training's checkpoint): a re-run may change the budget,
    not the recipe. ``bound=False``: nothing finished in the folder yet (no finished trial, no
    checkpoint), so a corrected recipe may take it over; returns True when it did (the caller
    drops what the earlier recipe left)."""
    lock = out / RECIPE_LOCK
    taken_over = False
    if lock.is_file() and not bound:
        taken_over = json.loads(lock.read_text()) != recipe
        lock.unlink()
    # the budget may change, and the compression steps (they run on the final model, after the study)
    strip = lambda r: {**{k: v for k, v in r.items() if k != "compress"},  # noqa: E731
                       "tune": {k: v for k, v in (r.get("tune") or {}).items() if k not in _BUDGET_FIELDS}}
    if lock.is_file():
        before = json.loads(lock.read_text())
        if strip(before) != strip(recipe):
            changed = sorted(k for k in set(before) | set(recipe) if strip(before).get(k) != strip(recipe).get(k))
            raise ConfigError(
                f"invalid output folder {str(out)!r}: it holds a run of a different recipe (sections changed: "
                f"{', '.join(changed)}); allowed: the same recipe (to resume or extend its study), or another --out"
            )
    atomic_write_text(lock, json.dumps(recipe, indent=2, sort_keys=True))
    return taken_over


def run(
    recipe: Any,
    *,
    out: str | Path | None = None,
    workers: int = 1,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> RunResult:
    """Search, train the final model, test it once and write the output folder."""
    from honing.tune import create_pruner, create_sampler, optimize, resolve_storage

    t_start = time.perf_counter()
    rec = _overrides(_as_recipe(recipe), n_trials=n_trials, timeout=timeout, seed=seed)
    r = rec.to_dict()
    if r.get("tune") is None:
        return train_once(rec, out=out, threads=threads, progress=progress)
    tune = r["tune"]
    out_dir = output_dir(r, out)
    data = _named_data_errors(cached_data, r, recipe)  # loads (and checks) the data before anything is written
    _announce(data, progress)
    tune["cv"], cv_rule = resolve_cv(tune, data)
    if progress:
        print(f"honing: search: {cv_rule}", file=sys.stderr, flush=True)
    metric = metric_of(r, data.task)
    objectives = tune.get("objectives")
    directions = [o["direction"] for o in objectives] if objectives else [direction_of(r, metric)]
    space = rec.space
    sampler = create_sampler(tune["sampler"], seed=r["seed"], space=space, directions=directions,
                             n_trials=tune.get("n_trials"))
    pruner = create_pruner(tune["pruner"], max_epochs=r["training"]["epochs"], n_trials=tune.get("n_trials"),
                           directions=directions)
    url = storage or tune.get("storage")
    if url is not None:  # a server or file elsewhere opens before the run folder is written
        store = resolve_storage(url, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if url is None:
        store = resolve_storage(None, out_dir)  # the study journal inside the run folder
    if _check_same_study(out_dir, r, bound=_has_finished_trial(store, r["name"])):
        _drop_study(store, r["name"], out_dir)
    n = tune.get("n_trials") or (len(space.grid(r)) if space is not None and space.is_finite else None)
    objective = RecipeObjective(r, str(out_dir), threads=threads or 1,
                                save_weights=tune.get("final") == "best_trial")
    if workers > 1:  # the workers load their own copies: the parent holds none while they train
        del data
        release_data()
    study = optimize(
        objective, study_name=r["name"], storage=store, space=space, directions=directions, sampler=sampler,
        pruner=pruner, n_trials=n, timeout=tune.get("timeout"), workers=workers, seed=r["seed"],
        base=r, progress=progress, run_dir=out_dir,
    )
    data = cached_data(r)
    t_search = time.perf_counter() - t_start
    if study.counts.get("running"):  # another run shares the study (one SQLite/PostgreSQL storage)
        print(f"honing: note: {study.counts['running']} trial(s) of study {study.study_name!r} are still running in "
              "another process; the final model is chosen from the trials finished so far (re-run this command "
              "once they finish to include them)", file=sys.stderr)

    selected = _select(study, directions, tune)
    if selected is None:
        raise ConfigError(f"the search finished no trial ({study.counts}); see the failed trials' errors in "
                          f"{out_dir / REPORT} or with `honing show {out_dir}`")
    best_recipe = rec.with_params(selected["params"]).to_dict()
    set_threads(threads or r["training"].get("threads"))
    t_final = time.perf_counter()
    if tune.get("final") == "best_trial":
        model = build_model(best_recipe, data, seed=r["seed"] + selected["number"])
        model.load_state_dict(load_file(str(out_dir / "trials" / f"{selected['number']}.safetensors")))
        history: list[dict[str, float]] = []
        final_how = f"weights of trial {selected['number']}"
    else:
        epochs = int(selected["user_attrs"].get("best_epoch") or best_recipe["training"]["epochs"])
        model, history = _retrain(best_recipe, data, epochs=epochs, threads=threads, progress=progress)
        final_how = f"retrained on train+validation for {epochs} epochs"
    t_final = time.perf_counter() - t_final

    results = _finish(out_dir, rec, best_recipe, data, model, history, study=study, selected=selected,
                      metric=metric, directions=directions, final_how=final_how,
                      timings={"search": t_search, "final_training": t_final}, t_start=t_start, progress=progress,
                      search={"validation": cv_rule, "cv": tune["cv"]})
    return RunResult(out_dir, results)


def train_once(recipe: Any, *, out: str | Path | None = None, threads: int | None = None,
               progress: bool = True, seed: int | None = None) -> RunResult:
    """One configuration, no search: train with validation (early stopping, best epoch), test once."""
    t_start = time.perf_counter()
    rec = _overrides(_as_recipe(recipe), n_trials=None, timeout=None, seed=seed)
    r = rec.to_dict()
    out_dir = output_dir(r, out)
    data = _named_data_errors(load_data, r, recipe)  # bad data fails before anything is written
    _announce(data, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_same_study(out_dir, r, bound=(out_dir / "checkpoint").is_dir() or (out_dir / RESULTS).is_file())
    set_threads(threads or r["training"].get("threads"))
    model = build_model(r, data, seed=r["seed"])
    trainer = build_trainer(r, model, data, seed=r["seed"], num_train=len(data.train), threads=threads)
    if is_few_shot(r):
        logs = {"epoch": 1.0, **(trainer.evaluate(data.val, prefix="val_") if data.val is not None else {})}
        history, how = [logs], f"few-shot prototypes of {r['transfer']['shots']} training examples per class"
    else:
        if progress:
            from honing.pipeline._summary import EpochProgress

            trainer.callbacks.append(EpochProgress("train"))
        result = trainer.fit(data.train, data.val, checkpoint_dir=out_dir / "checkpoint", resume=True)
        history, how = result.history, f"trained once: {result.stop_reason}; best epoch {result.best_epoch}"
    results = _finish(out_dir, rec, r, data, model, history, study=None, selected=None,
                      metric=metric_of(r, data.task), directions=[direction_of(r, metric_of(r, data.task))],
                      final_how=how,
                      timings={"search": 0.0, "final_training": time.perf_counter() - t_start}, t_start=t_start,
                      progress=progress)
    return RunResult(out_dir, results)


# --- stages ----------------------------------------------------------------------------------


def _announce(data: Dataset, progress: bool) -> None:
    """The data lines (target, rows, drops, imputation, classes) before any training (stderr)."""
    if progress:
        from honing.pipeline._summary import data_lines

        for line in data_lines(data.summary()):
            print(f"honing: {line}", file=sys.stderr, flush=True)


def _has_finished_trial(store: Any, name: str) -> bool:
    """Whether the study ``name`` in ``store`` has a complete or pruned trial (it binds its folder)."""
    from honing._core import HoningError
    from honing.tune import load_study_result

    try:
        counts = load_study_result(store, name).counts
    except HoningError:  # no such study yet
        return False
    return bool(counts["complete"] or counts["pruned"])


def _drop_study(store: Any, name: str, out_dir: Path) -> None:
    """Delete the unfinished study an earlier recipe left in the folder (every trial failed)."""
    from honing.tune import delete_study

    if delete_study(store, name):
        print(f"honing: note: {out_dir} held a study of another recipe with no finished trial; it was replaced",
              file=sys.stderr)


AUTO_CV_ROWS = 1000  # tune.cv: auto -> k-fold inside the search below this many train+validation rows
AUTO_CV_FOLDS = 5


def resolve_cv(tune: dict[str, Any], data: Dataset) -> tuple[int | None, str]:
    """``tune.cv`` as the search uses it (k or None for the validation split) and the rule, stated.

    ``auto``: 5-fold when the training and validation rows number fewer than 1000 (a validation
    split of a small set cannot tell trials apart: one row moves accuracy by 1/n), else the
    validation split; always the split with ``final: best_trial`` (it keeps one trial's weights)."""
    cv = tune.get("cv")
    rows = len(data.train) + (len(data.val) if data.val is not None else 0)
    if cv != "auto":
        return cv, (f"{cv}-fold cross-validation over {rows} train+validation rows (tune.cv)" if cv else
                    f"trials compared on the {len(data.val) if data.val is not None else 0} validation rows (tune.cv: null)")
    if tune.get("final") == "best_trial":
        return None, ("trials compared on the validation split (tune.cv: auto; final: best_trial keeps a trial's "
                      "weights, so no cross-validation)")
    if rows < AUTO_CV_ROWS or data.val is None:
        return AUTO_CV_FOLDS, (f"{AUTO_CV_FOLDS}-fold cross-validation in each trial (tune.cv: auto: {rows} train+"
                               f"validation rows < {AUTO_CV_ROWS}; set tune.cv: null for the validation split)")
    return None, (f"trials compared on the {len(data.val)} validation rows (tune.cv: auto: {rows} train+validation "
                  f"rows >= {AUTO_CV_ROWS}; set tune.cv: k for k-fold)")


def _select(study: Any, directions: list[str], tune: dict[str, Any]) -> dict[str, Any] | None:
    """The chosen trial: the best value; among tied trials, the lowest validation loss."""
    from honing.tune import select_from_pareto

    complete = [t for t in study.trials if t["state"] == "complete"]
    if not complete:
        return None
    if len(directions) == 1:
        best = next(t for t in complete if t["number"] == study.best_trial)
        tied = [t for t in complete if t["values"] and t["values"][0] == best["values"][0]]
        if len(tied) < 2:
            return best
        loss = lambda t: t["user_attrs"].get("val_loss", float("inf"))  # noqa: E731
        chosen = min(tied, key=lambda t: (loss(t), t["number"]))
        how = (f"{len(tied)} trials tied at the best value {best['values'][0]:.6g}; trial {chosen['number']} chosen "
               f"by the lowest validation loss ({loss(chosen):.4g})" if loss(chosen) != float("inf") else
               f"{len(tied)} trials tied at the best value {best['values'][0]:.6g}; the first was kept "
               "(no validation loss recorded)")
        return {**chosen, "tie_break": how}
    sel = tune.get("select") or {}
    names = [o["metric"] for o in tune["objectives"]]
    index = names.index(sel["metric"]) if sel.get("metric") in names else 0
    return select_from_pareto(study.pareto, directions, rule=sel.get("rule", "best"), metric_index=index)


def _retrain(recipe: dict[str, Any], data: Dataset, *, epochs: int, threads: int | None,
             progress: bool = False) -> tuple[Any, list]:
    """Train the chosen configuration on train+validation for the best trial's number of epochs."""
    train = data.train if data.val is None else Split(torch.cat([data.train.x, data.val.x]),
                                                      torch.cat([data.train.y, data.val.y]))
    model = build_model(recipe, data, seed=recipe["seed"])
    if is_few_shot(recipe):
        return model, []
    trainer = build_trainer(recipe, model, data, seed=recipe["seed"], num_train=len(train), epochs=epochs,
                            with_val=False, threads=threads)
    if progress:
        from honing.pipeline._summary import EpochProgress

        trainer.callbacks.append(EpochProgress("final model"))
    result = trainer.fit(train)
    return model, result.history


def _test(model: Any, recipe: dict[str, Any], data: Dataset) -> tuple[dict[str, float], dict[str, Any]]:
    """The one evaluation on the held-out test set, with a confusion matrix or residuals."""
    if data.test is None:
        return {}, {}
    trainer = build_trainer(recipe, model, data, seed=recipe["seed"], num_train=len(data.train), with_val=False,
                            for_training=False)
    metrics = trainer.evaluate(data.test)
    pred = trainer.predict(data.test.x)
    if data.task == "classification":
        k = data.num_outputs
        idx = data.test.y * k + pred.argmax(1)
        cm = torch.bincount(idx, minlength=k * k).reshape(k, k)
        return metrics, {"confusion_matrix": cm.tolist()}
    inverse = data.preprocessor.inverse_transform_target  # in the target's own units
    y_true, y_pred = inverse(data.test.y), inverse(pred)
    return metrics, {"residuals": {"y_true": y_true[:, 0].tolist(), "y_pred": y_pred[:, 0].tolist()}}


def _final_validation(model: Any, recipe: dict[str, Any], data: Dataset, final_how: str,
                      metric: str) -> dict[str, Any] | None:
    """The final model's score on the validation rows, beside the chosen trial's best validation
    value, and whether it trained on them (retrained on train+validation)."""
    if data.val is None or not metric.startswith("val_"):
        return None
    trainer = build_trainer(recipe, model, data, seed=recipe["seed"], num_train=len(data.train), with_val=False,
                            for_training=False)
    values = trainer.evaluate(data.val, prefix="val_")
    seen = final_how.startswith("retrained")
    note = ("the final model was retrained on train+validation: it has seen these rows (optimistic)" if seen
            else "the final model did not train on these rows")
    return {"value": values.get(metric), "metric": metric, "metrics": values, "trained_on_them": seen, "note": note}


def _finish(out_dir: Path, rec: Any, best_recipe: dict[str, Any], data: Dataset, model: Any,
            history: list[dict[str, float]], *, study: Any, selected: dict[str, Any] | None, metric: str,
            directions: list[str], final_how: str, timings: dict[str, float], t_start: float,
            progress: bool = True, search: dict[str, Any] | None = None) -> dict[str, Any]:
    r = rec.to_dict()
    test_metrics, test_extra = _test(model, best_recipe, data)
    summary = data.summary()
    final_val = _final_validation(model, best_recipe, data, final_how, metric)
    balance = imbalance(data)
    primary = primary_metric(data.task, test_metrics, bool(balance and balance["imbalanced"]))
    baselines = (fit_baselines(data, (r.get("evaluate") or {}).get("metrics"), seed=r["seed"])
                 if (r.get("evaluate") or {}).get("baselines", True) else {})
    versus = compare(primary, test_metrics, baselines)
    transfer = transfer_results(best_recipe, model) if is_transfer(best_recipe) else None
    output = r.get("output") or {}
    model_dir = out_dir / "model" if output.get("save_model", True) else out_dir / "compress" / "00-uncompressed"
    if output.get("save_model", True) or r.get("compress"):
        save_model(model_dir, model, recipe=best_recipe, preprocessor=data.preprocessor, task=data.task,
                   input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names,
                   data=data)
    compressed = None
    if r.get("compress"):
        from honing.pipeline._compress import compress

        t_compress = time.perf_counter()
        compressed = compress(out_dir, {**best_recipe, "compress": r["compress"]}, data, model, baseline=model_dir,
                              progress=progress)
        timings = {**timings, "compress": time.perf_counter() - t_compress}
    timings = {**timings, "total": time.perf_counter() - t_start}
    results: dict[str, Any] = {
        "name": r["name"],
        "task": data.task,
        "metric": metric,
        "direction": directions[0] if len(directions) == 1 else directions,
        "best_params": selected["params"] if selected else {},
        "best_value": (selected["values"][0] if selected and len(directions) == 1 else
                       (selected["values"] if selected else None)),
        "best_trial": selected["number"] if selected else None,
        "tie_break": (selected or {}).get("tie_break"),
        "search": search,
        "trials": dict(study.counts) if study else {},
        "final_model": final_how,
        "final_validation": final_val,
        "parameters": count_parameters(model, trainable_only=False),
        "test_metrics": test_metrics,
        "transfer": transfer,
        "compress": compressed,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seed": r["seed"],
        "versions": versions(),
        "data": summary,
        "imbalance": balance,
        "primary_metric": primary,
        "baselines": baselines,
        "vs_baseline": versus,
        "study": {"name": study.study_name, "storage": mask_password(study.storage_url)} if study else None,
        "recipe": _masked_recipe(r),
    }
    if study and len(directions) > 1:
        results["objectives"] = [o["metric"] for o in r["tune"]["objectives"]]
        results["pareto"] = [{"number": t["number"], "values": t["values"], "params": t["params"]} for t in study.pareto]
    results["warnings"] = _warnings(results)
    for line in results["warnings"]:
        print(f"honing: warning: {line}", file=sys.stderr)
    atomic_write_text(out_dir / RESULTS, json.dumps(results, indent=2, default=_json_default))
    if output.get("report", True):
        from honing.pipeline._report import report_data
        from honing.report import write_report

        write_report(out_dir / REPORT, report_data(results, study=study, history=history, test_extra=test_extra,
                                                   class_names=data.class_names, directions=directions,
                                                   log_params=_log_params(rec)))
    return results


def _warnings(results: dict[str, Any]) -> list[str]:
    """What a user must not miss: no better than a baseline, imbalanced classes, rare classes in a split."""
    out = []
    search = results.get("search") or {}
    rows = (results.get("data") or {}).get("rows") or {}
    if search and not search.get("cv") and results.get("task") == "classification" and 0 < rows.get("val", 0) < 100:
        out.append(f"the validation split has {rows['val']} rows: one row moves {results['metric']} by "
                   f"{1 / rows['val']:.3f}, so trials closer than that cannot be told apart (tune.cv: k, or a larger "
                   "val_size)")
    if results.get("tie_break"):
        out.append(results["tie_break"] + " (a validation split too small or too easy to tell them apart?)")
    vs = results.get("vs_baseline")
    if vs and not vs["better"]:
        out.append(f"the model is not better than the {vs['best_baseline']} baseline on the test rows "
                   f"({vs['metric']} {vs['model']:.4g} vs {vs['baseline']:.4g}); see results.json 'baselines'")
    balance = results.get("imbalance") or {}
    if balance.get("imbalanced"):
        out.append(f"imbalanced classes (largest/smallest training class {balance['ratio']:g}:1; the majority class "
                   f"alone is {100 * balance['majority_share']:.1f}% of the training rows): read "
                   f"{results.get('primary_metric')} and the majority baseline, not accuracy")
    for split, names in (balance.get("few_rows") or {}).items():
        shown = ", ".join(map(str, names[:8])) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        out.append(f"fewer than 5 {split} rows of class(es) {shown}: their {split} scores are noise "
                   "(more rows, a larger val_size/test_size, or data.test: an external test file)")
    return out


def _masked_recipe(r: dict[str, Any]) -> dict[str, Any]:
    """The recipe as results.json stores it: a storage URL's password replaced by ***."""
    tune = r.get("tune")
    if not tune or not isinstance(tune.get("storage"), str):
        return r
    return {**r, "tune": {**tune, "storage": mask_password(tune["storage"])}}


def _log_params(rec: Any) -> set[str]:
    space = rec.space
    if space is None:
        return set()
    return {p.path for p in getattr(space, "params", []) if getattr(p, "log", False)}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")
