"""The first stages: the data, the search (Optuna through honing.tune) and the chosen trial.

The run folder binds one study: a re-run may change the budget, not the recipe
(``check_same_study``); the study itself resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typing import Any

from honing._core import ConfigError, DataError, RunFailedError, atomic_write_text
from honing.data import Dataset
from honing.pipeline._build import load_data
from honing.pipeline._context import RunContext
from honing.pipeline._objective import RecipeObjective
from honing.tune._result import BUDGET_ATTR

RESULTS, REPORT, RECIPE_LOCK = "results.json", "report.html", "recipe.json"
# study attributes `honing worker` reads: the recipe each trial runs, the budget, the leader's folder
# and the warm-start configurations (an AutoSampler proposes trial i from the same start list everywhere)
RECIPE_ATTR, FOLDER_ATTR = "honing:recipe", "honing:run_dir"
STARTS_ATTR = "honing:warm_start"
# fields a re-run may change without starting another study
_BUDGET_FIELDS = ("n_trials", "timeout", "storage", "warm_start")
AUTO_CV_ROWS = 1000  # tune.cv: auto -> k-fold inside the search below this many train+validation rows
AUTO_CV_FOLDS = 5


class DataStage:
    """Load and check the data (before anything is written); print what was read."""

    name = "data"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from honing.pipeline._summary import data_lines

        if ctx.recipe.data.check_labels:  # seconds on small tables, minutes on tens of thousands of images
            ctx.say(f"data: checking the labels (data.check_labels: {ctx.recipe.data.check_labels}): a 5-fold "
                    "logistic regression over the train+validation rows ...")
        ctx.data = named_data_errors(lambda: load_data(ctx.recipe, ctx.memo), ctx.options.source)
        for line in data_lines(ctx.data.summary()):
            ctx.say(line)
        ctx.metric = ctx.recipe.search_metric(ctx.data.task) or "val_loss"
        ctx.directions = ctx.recipe.directions(ctx.data.task)
        return {"rows": {s: len(getattr(ctx.data, s)) for s in ("train", "val", "test") if getattr(ctx.data, s)}}


class SearchStage:
    """The hyperparameter search: trials of the recipe with the space's parameters (resumes)."""

    name = "search"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from honing.tune import create_pruner, create_sampler, optimize, resolve_storage

        rec, opts = ctx.recipe, ctx.options
        tune = rec.tune
        cv, rule = resolve_cv(tune, ctx.data)
        ctx.say(f"search: {rule}")
        ctx.search = {"validation": rule, "cv": cv}
        searched = rec.with_params({"tune.cv": cv}) if cv != tune.cv else rec  # what each trial runs
        base = searched.to_dict()
        space = rec.space
        sampler = create_sampler(tune.sampler, seed=rec.seed, space=space, directions=ctx.directions,
                                 n_trials=tune.n_trials)
        pruner = create_pruner(tune.pruner, max_epochs=rec.training.epochs, n_trials=tune.n_trials,
                               directions=ctx.directions)
        if getattr(pruner, "choice", None):  # pruner: auto says what the budget chose
            ctx.say(f"early stopping: {pruner.choice}")
            ctx.search["early_stopping"] = pruner.choice
        url = opts.storage or tune.storage
        if url is not None:  # a server or file elsewhere opens before the run folder is written
            store = resolve_storage(url, ctx.out_dir)
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        if url is None:
            store = resolve_storage(None, ctx.out_dir)  # the study journal inside the run folder
        resumed = _has_finished_trial(store, rec.name)
        if check_same_study(ctx.out_dir, base, bound=resumed):
            _drop_study(store, rec.name, ctx.out_dir)
            ctx.forget()
            resumed = False
        n = tune.n_trials or (len(space.grid(base)) if space is not None and space.is_finite else None)
        executor = _executor(opts)
        local = opts.workers <= 1 and executor is None  # trials in this process: they share its data
        checked = ctx.data.info.get("label_issues")  # data.check_labels: made once, reused by every process
        objective = RecipeObjective(searched, str(ctx.out_dir), threads=opts.threads or 1,
                                    save_weights=tune.final == "best_trial", keep_predictions=rec.ensemble is not None,
                                    data=ctx.data if local else None, label_issues=None if local else checked)
        experience = _Experience(ctx) if tune.warm_start and len(ctx.directions) == 1 else None
        warm = experience.starts() if experience is not None and not resumed else []
        if not local:  # the workers load their own copies: the parent holds none while they train
            ctx.data = None
            ctx.memo.clear()
        study = optimize(
            objective, study_name=rec.name, storage=store, space=space, directions=ctx.directions, sampler=sampler,
            pruner=pruner, n_trials=n, timeout=tune.timeout, workers=opts.workers, seed=rec.seed,
            base=base, progress=opts.progress, run_dir=ctx.out_dir, warm_start=warm,
            attrs={RECIPE_ATTR: base, BUDGET_ATTR: n, FOLDER_ATTR: str(ctx.out_dir.resolve()), STARTS_ATTR: warm},
            executor=executor,
        )
        spent = [t["user_attrs"]["energy"] for t in study.trials if isinstance(t["user_attrs"].get("energy"), dict)]
        if spent:  # every trial's energy (in its own process, wherever it ran)
            ctx.results.setdefault("energy", {})["search"] = {
                "joules": round(sum(e["joules"] for e in spent), 4), "trials": len(spent),
                "seconds": round(sum(e.get("seconds", 0.0) for e in spent), 4),
                "method": "+".join(sorted({e["method"] for e in spent})),
                "detail": f"the sum of {len(spent)} trials' own readings, each in the process that ran it"}
        remote = [t["user_attrs"]["command"] for t in study.trials if "command" in t["user_attrs"]]
        if remote:  # trials that `honing worker` commands ran, here or on other machines
            commands = len(set(remote))
            ctx.search["workers"] = {"trials": len(remote), "commands": commands}
            ctx.say(f"search: {len(remote)} of {len(study.trials)} trials ran in {commands} `honing worker` "
                    f"command{'s' if commands > 1 else ''}")
        if experience is not None:
            experience.record(study)
        if ctx.data is None:
            ctx.data = load_data(rec, ctx.memo, label_issues=checked)
        if study.counts.get("running"):  # another run shares the study (one SQLite/PostgreSQL storage)
            ctx.note(f"{study.counts['running']} trial(s) of study {study.study_name!r} are still running in "
                     "another process; the final model is chosen from the trials finished so far (re-run this "
                     "command once they finish to include them)")
        ctx.study = study
        return {"trials": dict(study.counts)}


def _executor(opts: Any) -> Any:
    """The executor the options name (None: in this process, or local worker processes)."""
    from honing.tune import EXECUTORS

    if opts.executor in (None, "processes"):
        return opts.executor
    if opts.executor == "ray":
        return EXECUTORS.create("ray", address=opts.address, cpus=opts.trial_cpus, gpus=opts.trial_gpus)
    return EXECUTORS.create(opts.executor)


class SelectStage:
    """The chosen trial: the best value (ties: the lowest validation loss), or a Pareto rule."""

    name = "select"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        selected = select(ctx.study, ctx.directions, ctx.recipe.tune)
        if selected is None:
            raise RunFailedError(f"the search finished no trial ({ctx.study.counts}); see the failed trials' errors in "
                                 f"{ctx.out_dir / REPORT} or with `honing show {ctx.out_dir}`")
        ctx.selected = selected
        return {"trial": selected["number"]}


# --- helpers -------------------------------------------------------------------------------------


class _Experience:
    """Warm start for one run: the store next to its run folder, its family and data features."""

    def __init__(self, ctx: RunContext) -> None:
        from honing.tune import ExperienceStore

        rec, data = ctx.recipe, ctx.data
        self.ctx, self.store = ctx, ExperienceStore(ctx.out_dir.resolve().parent)
        # a transfer recipe has no model section: its family is the pretrained source it starts from
        model = rec.model.name if rec.model is not None else f"transfer:{rec.transfer.source}"
        self.family = {"model": model, "task": data.task, "metric": ctx.metric,
                       "space": sorted(p.path for p in rec.space.params)}
        self.features = {"rows": len(data.train), "features": int(np.prod(data.input_shape)),
                         "classes": len(data.class_names or ())}

    def starts(self) -> list[dict[str, Any]]:
        """The earlier studies' best configurations (a new study only), said on the console."""
        from honing.tune import EXPERIENCE_FILE

        ctx = self.ctx
        points, sources = self.store.starts(self.family, self.features, exclude=ctx.out_dir)
        ctx.search["warm_start"] = {"configurations": len(points), "from": sources, "store": str(self.store.path)}
        if points:
            names = ", ".join(Path(s).name for s in sources)
            ctx.note(f"warm start: {len(points)} configuration(s) from {len(sources)} earlier stud"
                    f"{'y' if len(sources) == 1 else 'ies'} of model {self.family['model']} ({names}; "
                    f"{self.store.path.parent / EXPERIENCE_FILE}) tried among the first trials; "
                    "tune.warm_start: false for a cold start")
        return points

    def record(self, study: Any) -> None:
        try:
            self.store.record(self.ctx.out_dir, self.family, self.features,
                              [{"params": t["params"], "value": t["values"][0]} for t in study.trials
                               if t["state"] == "complete" and t["values"]], self.ctx.directions[0])
        except OSError as err:  # a read-only parent folder: the run goes on without it
            self.ctx.note(f"warm start: could not record this study in {self.store.path}: {err}")



def named_data_errors(loader: Any, source: Any) -> Dataset:
    """``loader()``; a DataError names the recipe's data section (and its line, from a file)."""
    from honing.recipe import field_line

    def where(field: str) -> str:
        if isinstance(source, (str, Path)):
            line = field_line(source, field)
            return f"{source}:{line}: {field}" if line else f"{source}: {field}"
        return field

    try:
        return loader()
    except DataError as err:
        raise DataError(f"{where('data.source')}: {err}") from None
    except ConfigError as err:  # "invalid check_labels ...": a data option that does not fit this data
        from honing.recipe._sections import DataSection

        option = str(err).split(" ")[1] if str(err).startswith("invalid ") else ""
        if option not in DataSection.model_fields:
            raise
        raise ConfigError(f"{where('data.' + option)}: {err}") from None


def output_dir(recipe: Any, out: str | Path | None) -> Path:
    """``out``, else the recipe's ``output.dir``, else ``runs/<name>`` (a Recipe or its dict)."""
    if out is not None:
        return Path(out)
    if isinstance(recipe, dict):
        configured, name = (recipe.get("output") or {}).get("dir"), recipe["name"]
    else:
        configured, name = recipe.output.dir, recipe.name
    return Path(configured) if configured else Path("runs") / name


def check_same_study(out: Path, recipe: dict[str, Any], *, bound: bool = True) -> bool:
    """A folder holds one study (or one training's checkpoint): a re-run may change the budget,
    not the recipe. ``bound=False``: nothing finished in the folder yet (no finished trial, no
    checkpoint), so a corrected recipe may take it over; returns True when it did (the caller
    drops what the earlier recipe left)."""
    lock = out / RECIPE_LOCK
    taken_over = False
    if lock.is_file() and not bound:
        taken_over = json.loads(lock.read_text()) != recipe
        lock.unlink()
    strip = _study_identity
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


def _study_identity(r: dict[str, Any]) -> dict[str, Any]:
    """What a re-run may not change. It may change the budget, the compression steps (they run on
    the final model, after the study), the ensemble's options (it combines the trials after the
    study), the architecture search's (what it chose is the model section, compared like the
    rest), the number of data-parallel processes (how the model trains, not what it is), the
    robust section unless robustness is an objective (it attacks the final model), and the audited
    group columns while they stay model inputs (the audit reads the test rows)."""
    tune = r.get("tune") or {}
    objectives = [o.get("metric") for o in tune.get("objectives") or []]
    skip = ("compress", "ensemble", "nas") + (() if "robustness" in objectives else ("robust",))
    evaluate = dict(r.get("evaluate") or {})
    if evaluate.get("group_inputs", True):
        evaluate.pop("groups", None)
    if not evaluate.get("groups"):
        evaluate.pop("group_inputs", None)
    return {**{k: v for k, v in r.items() if k not in skip},
            "tune": {k: v for k, v in tune.items() if k not in _BUDGET_FIELDS},
            "training": {k: v for k, v in (r.get("training") or {}).items() if k != "distributed"},
            "evaluate": evaluate}


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
    import sys

    from honing.tune import delete_study

    if delete_study(store, name):
        print(f"honing: note: {out_dir} held a study of another recipe with no finished trial; it was replaced",
              file=sys.stderr)


def resolve_cv(tune: Any, data: Dataset) -> tuple[int | None, str]:
    """``tune.cv`` as the search uses it (k or None for the validation split) and the rule, stated.

    ``auto``: 5-fold when the training and validation rows number fewer than 1000 (a validation
    split of a small set cannot tell trials apart: one row moves accuracy by 1/n), else the
    validation split; always the split with ``final: best_trial`` (it keeps one trial's weights)."""
    cv, final = tune.cv, tune.final
    rows = len(data.train) + (len(data.val) if data.val is not None else 0)
    if cv != "auto":
        return cv, (f"{cv}-fold cross-validation over {rows} train+validation rows (tune.cv)" if cv else
                    f"trials compared on the {len(data.val) if data.val is not None else 0} validation rows (tune.cv: null)")
    if final == "best_trial":
        return None, ("trials compared on the validation split (tune.cv: auto; final: best_trial keeps a trial's "
                      "weights, so no cross-validation)")
    if rows < AUTO_CV_ROWS or data.val is None:
        return AUTO_CV_FOLDS, (f"{AUTO_CV_FOLDS}-fold cross-validation in each trial (tune.cv: auto: {rows} train+"
                               f"validation rows < {AUTO_CV_ROWS}; set tune.cv: null for the validation split)")
    return None, (f"trials compared on the {len(data.val)} validation rows (tune.cv: auto: {rows} train+validation "
                  f"rows >= {AUTO_CV_ROWS}; set tune.cv: k for k-fold)")


def select(study: Any, directions: list[str], tune: Any) -> dict[str, Any] | None:
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
    names = [o.metric for o in tune.objectives]
    index = names.index(tune.select.metric) if tune.select.metric in names else 0
    return select_from_pareto(study.pareto, directions, rule=tune.select.rule, metric_index=index)
