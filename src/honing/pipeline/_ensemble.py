"""The ``ensemble`` stage: the search's best finished trials combined into one model, with no
further training (the recipe's ``ensemble:`` section; docs/ensemble.md).

Each finished trial kept its weights and its predictions on the rows it was compared on (the
validation rows, or every train+validation row out of fold under ``tune.cv: k``; see
``RecipeObjective``). The stage picks the weights on those predictions (greedy selection,
stacking or a plain average), fits a temperature (classification), tests every candidate, the
ensemble and the run's final model on the test rows, and saves ``ensemble/``, a model folder
that loads, evaluates, serves and exports like ``model/``.

Under cross-validation a trial's member is its k fold models averaged (bagging). Each fold
refit the preprocessing on its own rows: a per-feature rescaling, which the member's input map
(and, for regression, output map) undoes, checked on every train+validation row.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from safetensors.torch import load_file

from honing._core import DataError
from honing.artifacts import save_model, write_state
from honing.models import count_parameters
from honing.pipeline._build import build_model
from honing.pipeline._context import RunContext
from honing.pipeline._objective import measure_latency_ms
from honing.pipeline._stage_model import _evaluator

ENSEMBLE_DIR = "ensemble"


class EnsembleStage:
    """Combine the search's best finished trials (greedy selection, stacking or an average)."""

    name = "ensemble"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        section = ctx.recipe.ensemble
        if section is None or ctx.study is None:
            return None
        cv = (ctx.search or {}).get("cv")
        candidates = _candidates(ctx, section.candidates)
        key = [[t["number"] for t in candidates], section.model_dump(mode="json"), cv, ctx.model_key]
        stored = ctx.resume(key)
        if stored is None or not (ctx.out_dir / ENSEMBLE_DIR / "meta.json").is_file():
            if len(candidates) < 2:
                stored = {"skipped": f"{len(candidates)} finished trial(s) kept predictions; an ensemble needs 2 "
                                     "(trials run before the recipe had an ensemble section keep none)"}
            else:
                try:
                    stored = _build_ensemble(ctx, section, candidates, cv)
                except DataError as err:
                    stored = {"skipped": str(err)}
            ctx.keep(key, stored)
        if stored.get("skipped"):
            ctx.note(f"ensemble: skipped: {stored['skipped']}")
        ctx.results["ensemble"] = stored
        return {"members": len(stored.get("members") or [])}


def _candidates(ctx: RunContext, n: int) -> list[dict[str, Any]]:
    """The best ``n`` finished trials that kept their weights and predictions, best first."""
    sign = -1.0 if ctx.directions[0] == "maximize" else 1.0
    trials = ctx.out_dir / "trials"
    done = [t for t in ctx.study.trials if t["state"] == "complete" and t["values"]
            and (trials / f"{t['number']}.pred.safetensors").is_file()
            and (trials / f"{t['number']}.members.safetensors").is_file()]
    done.sort(key=lambda t: (sign * t["values"][0], t["user_attrs"].get("val_loss", float("inf")), t["number"]))
    return done[:n]


def _build_ensemble(ctx: RunContext, section: Any, candidates: list[dict[str, Any]], cv: int | None) -> dict[str, Any]:
    from honing import ensemble as E

    data, task, rec = ctx.data, ctx.data.task, ctx.recipe
    ctx.say(f"ensemble: {section.method} over the best {len(candidates)} trials "
            f"({'out-of-fold predictions of ' + str(cv) + ' folds' if cv else 'validation predictions'})")
    if cv:
        rows = data.fold_indices(int(cv), seed=rec.seed)
        maps, imputed = _fold_maps(data, rows)
        if imputed:
            ctx.say(f"ensemble: note: {imputed}")
        y = _pool(data)[1]
    else:
        if data.val is None:
            raise DataError("no validation rows to choose the ensemble's weights on (data.val_size 0)")
        rows, maps, y, imputed = [], [], data.val.y, None
    members, preds, sections = [], [], []
    for t in candidates:
        trial = rec.with_params(t["params"]) if t["params"] else rec
        pred = load_file(str(ctx.out_dir / "trials" / f"{t['number']}.pred.safetensors"))["pred"]
        state = load_file(str(ctx.out_dir / "trials" / f"{t['number']}.members.safetensors"))
        if cv:
            folds = []
            for i, ((_, va), (in_map, out_map)) in enumerate(zip(rows, maps)):
                model = _model_of(trial, data, {k[len(f"fold{i}."):]: v for k, v in state.items()
                                                 if k.startswith(f"fold{i}.")})
                folds.append(E.Member(model, input_map=copy.deepcopy(in_map), output_map=copy.deepcopy(out_map)))
                if out_map is not None:  # this fold's predictions in the model folder's target units
                    idx = torch.as_tensor(va)
                    pred[idx] = out_map(pred[idx])
            members.append(E.Member(E.bag(folds, task=task)))
        else:
            members.append(E.Member(_model_of(trial, data, state)))
        preds.append(E.as_probabilities(pred, task))
        sections.append(trial.model.model_dump(mode="json"))

    selection = None
    if section.method == "greedy":
        selection = E.greedy_selection(preds, y, task=task, rounds=section.rounds, init=min(section.init, len(preds)),
                                       bags=section.bags, seed=rec.seed)
        weights: list[float] | None = selection.weights
        head = None
        mix = sum(w * p for w, p in zip(weights, preds))
    elif section.method == "average":
        weights, head = [1 / len(preds)] * len(preds), None
        mix = sum(preds) / len(preds)
    else:  # stacking: the head's own score on these rows is cross-fitted
        head = E.fit_stacker(preds, y, task=task)
        weights = None
        mix = E.cross_fitted_predictions(preds, y, task=task, seed=rec.seed)
    best = (candidates[0], members[0])  # the best trial by its validation value
    keep = [i for i in range(len(members)) if head is not None or weights[i] > 0]
    if head is None:  # members with no weight are left out of the model
        members, sections, weights = [members[i] for i in keep], [sections[i] for i in keep], [weights[i] for i in keep]
        candidates = [candidates[i] for i in keep]
    temperature, calibration = 1.0, "not fitted (regression)" if task == "regression" else "off (calibrate: false)"
    if task == "classification" and section.calibrate:
        temperature, calibration = E.checked_temperature(mix.clamp_min(1e-12).log(), y, seed=rec.seed)
    model = E.EnsembleModel(members, task=task, weights=weights, head=head, temperature=temperature).eval()

    single = [E.prediction_loss(p, y, task) for p in preds]
    rows_name = "out-of-fold train+validation rows" if cv else "validation rows"
    out: dict[str, Any] = {
        "method": section.method, "rows": f"{len(y)} {rows_name}", "temperature": round(temperature, 4),
        "calibration": calibration,
        "selection_loss": {"ensemble": round(E.prediction_loss(mix, y, task), 6), "best_single": round(min(single), 6),
                           "what": "log loss" if task == "classification" else "mean squared error (scaled target)",
                           "note": ("the ensemble's weights were chosen on these rows (optimistic)" if head is None
                                    else "the stacking head's score is cross-fitted: no row scored by a head fitted "
                                         "on it")},
        "members": [{"trial": t["number"], "value": t["values"][0], "weight": None if head is not None else round(w, 4),
                     "models": int(cv or 1)} for t, w in zip(candidates, weights or [None] * len(candidates))],
    }
    if selection is not None:
        out["selection_loss"]["path"] = [round(v, 6) for v in selection.path]
    if imputed:
        out["imputed"] = imputed
    out["test"] = _compare(ctx, model, members, candidates, best) if data.test is not None else None
    folder = ctx.out_dir / ENSEMBLE_DIR
    info = E.folder_info(model, sections, [{"trial": t["number"]} for t in candidates])
    save_model(folder, model, recipe=ctx.final_recipe.to_dict(), preprocessor=data.preprocessor, task=task,
               input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names,
               extra={"compression": info}, weights=write_state(model.state_dict()), data=data)
    out["folder"] = str(folder)
    if out["test"]:
        t, metric = out["test"], _test_metric(ctx)
        ctx.say(f"ensemble: {len(members)} trial{'' if len(members) == 1 else 's'}; test {metric} "
                f"{t['ensemble']['metrics'].get(metric)} against the best single trial's "
                f"{t['best_single']['metrics'].get(metric)} and the final model's "
                f"{t['final_model']['metrics'].get(metric)}")
    return out


def _test_metric(ctx: RunContext) -> str:
    """The search metric's test counterpart (the first test metric when there is none)."""
    metric = ctx.metric[4:] if ctx.metric.startswith("val_") else ctx.metric
    return metric if metric in ctx.test_metrics else next(iter(ctx.test_metrics), "loss")


def _compare(ctx: RunContext, model: Any, members: list[Any], candidates: list[dict[str, Any]],
             best: tuple[dict[str, Any], Any]) -> dict[str, Any]:
    """Every member, the best single trial (the best by validation value), the final model and the
    ensemble on the test rows: metrics, calibration, parameters, latency (1 row)."""
    data, recipe = ctx.data, ctx.final_recipe

    def scored(module: Any, *, timed: bool = False) -> dict[str, Any]:
        module.eval()
        evaluate = _evaluator(module, recipe, data)
        record: dict[str, Any] = {"metrics": {k: round(v, 6) for k, v in evaluate.evaluate(data.test).items()},
                                  "parameters": count_parameters(module, trainable_only=False)}
        if data.task == "classification":
            from honing.ensemble import expected_calibration_error

            probs = evaluate.predict(data.test.x).softmax(-1)
            record["ece"] = round(expected_calibration_error(probs, data.test.y), 6)
        if timed:
            record["latency_ms"] = round(measure_latency_ms(module, data.input_shape, repeats=20), 4)
        return record

    rows = {f"trial {t['number']}": scored(m) for t, m in zip(candidates, members)}
    single = rows.get(f"trial {best[0]['number']}") or scored(best[1])  # a member already, or scored here
    single = {**single, "latency_ms": round(measure_latency_ms(best[1], data.input_shape, repeats=20), 4)}
    return {"members": rows, "best_single": {"trial": best[0]["number"], **single},
            "final_model": {"how": ctx.final_how, **scored(ctx.model, timed=True)},
            "ensemble": scored(model, timed=True)}


def _model_of(recipe: Any, data: Any, state: dict[str, torch.Tensor]) -> Any:
    model = build_model(recipe, data, seed=recipe.seed).model
    model.load_state_dict(state)
    return model.eval()


def _pool(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The train+validation rows as the model folder prepares them (inputs, targets), in the order
    of ``raw_train_val`` (train rows first)."""
    if data.val is None:
        return data.train.x, data.train.y
    return torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y])


def _fold_maps(data: Any, rows: list[tuple[Any, Any]]) -> tuple[list[tuple[Any, Any]], str | None]:
    """Per fold, the map from the model folder's preprocessed inputs to the fold's (None: the
    same), and for regression the map from the fold's scaled targets back to the folder's; and a
    note when a fold imputed missing values with other fill values than the folder's. The input
    maps are fitted on the cells that held a value: an imputed cell reaches a fold's model with
    the folder's fill value (from all train+validation rows) mapped into the fold's units, not
    the fold's own, and the note says how far apart the two are."""
    from honing.data import make_split
    from honing.ensemble import fit_affine, imputed_gap

    raw_x, raw_y = data.raw_train_val
    main_x, main_y = _pool(data)
    cells = data.preprocessor.imputed_cells(raw_x)
    ignore = None if cells is None or not cells.any() else torch.from_numpy(cells)
    out, gaps = [], []
    for i, (tr, _) in enumerate(rows):
        pre = data.fold_preprocessor(tr)
        fold = make_split(pre, raw_x, raw_y, data.task)
        try:
            in_map = fit_affine(main_x, fold.x, what=f"fold {i + 1} inputs", ignore=ignore)
            out_map = fit_affine(fold.y, main_y, what=f"fold {i + 1} targets") if data.task == "regression" else None
        except DataError as err:
            raise DataError(f"{err}. To ensemble these trials, search on the validation split (tune.cv: null): "
                            "its trials share the model folder's preprocessing") from None
        if ignore is not None:
            gaps.append(imputed_gap(in_map, main_x, fold.x, ignore))
        out.append((in_map, out_map))
    note = None
    if gaps and max(gaps) > 1e-3:
        note = (f"{int(ignore.sum())} imputed input cells of the train+validation rows reach each fold's model with "
                f"the model folder's fill values, not the fold's own (largest difference {max(gaps):.3g} of a "
                "feature's spread), as new rows will; tune.cv: null ensembles trials that share the folder's "
                "preprocessing exactly")
    return out, note

