"""The last stages: baselines, the transfer summary, the model folder, compression,
results.json and the report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from honing._core import atomic_write_text
from honing.artifacts import save_model, versions, write_reference
from honing.models import count_parameters
from honing.pipeline._baselines import compare, fit_baselines, imbalance, primary_metric
from honing.pipeline._context import RunContext
from honing.pipeline._stage_search import REPORT, RESULTS
from honing.pipeline._transfer import transfer_results
from honing.tune import mask_password

MODEL_DIR = "model"


class BaselinesStage:
    """Quick standard baselines on the same split (majority/mean, linear, gradient boosting,
    TF-IDF), the imbalance check and the metric the results lead with."""

    name = "baselines"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rec, data = ctx.recipe, ctx.data
        balance = imbalance(data)
        primary = primary_metric(data.task, ctx.test_metrics, bool(balance and balance["imbalanced"]))
        baselines: dict[str, Any] = {}
        if rec.evaluate.baselines:
            key = [rec.load_args(), rec.data.source, rec.evaluate.metrics, rec.seed]
            stored = ctx.resume(key)
            if stored is None:
                stored = {"baselines": fit_baselines(data, rec.evaluate.metrics, seed=rec.seed)}
                ctx.keep(key, stored)
            baselines = stored["baselines"]
        ctx.results.update(imbalance=balance, primary_metric=primary, baselines=baselines,
                           vs_baseline=compare(primary, ctx.test_metrics, baselines))
        return {"baselines": len(baselines)}


class TransferStage:
    """What fine-tuning trained, and how much of a source model's old task it kept."""

    name = "transfer"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        if ctx.final_recipe.transfer is None:
            return None
        ctx.results["transfer"] = transfer_results(ctx.final_recipe, ctx.model, ctx.memo)
        return {"strategy": ctx.final_recipe.transfer.strategy}


class SaveStage:
    """The model folder (``model/``): weights, preprocessing, recipe, meta (honing.artifacts)."""

    name = "save"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        rec, data = ctx.recipe, ctx.data
        keep = rec.output.save_model
        ctx.results["model_dir"] = None
        if not keep and rec.compress is None:
            return None
        folder = ctx.out_dir / MODEL_DIR if keep else ctx.out_dir / "compress" / "00-uncompressed"
        save_model(folder, ctx.model, recipe=ctx.final_recipe.to_dict(), preprocessor=data.preprocessor,
                   task=data.task, input_shape=data.input_shape, num_outputs=data.num_outputs,
                   class_names=data.class_names, data=data)
        ctx.results["model_dir"] = str(folder)
        return {"folder": str(folder)}


class ReferenceStage:
    """The drift reference beside the saved model (``reference.json``): the training rows' raw
    feature distributions (tables), the model's penultimate features (images, text), and its
    outputs and predictions on held-out rows (honing.data._profile)."""

    name = "reference"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        folder = ctx.results.get("model_dir")
        if not folder:
            return None
        ref = build_reference(ctx.model, ctx.data, seed=ctx.recipe.seed)
        write_reference(folder, ref)
        return {"features": len(ref["features"]), "outputs": len(ref["outputs"]),
                "embeddings": len((ref.get("embeddings") or {}).get("rows", []))}


def build_reference(model: Any, data: Any, *, seed: int = 0) -> dict[str, Any]:
    """What ``reference.json`` holds for ``model`` trained on ``data`` (see honing.data._profile)."""
    import torch

    from honing.data import embed, embedding_profile, feature_profile, output_profile, prediction_profile

    pre = data.preprocessor
    features: list[dict[str, Any]] = []
    if getattr(pre, "kind", "") == "tabular":
        raw_x, _ = data.raw_train_val
        features = feature_profile(raw_x, pre.columns, pre.kinds, seed=seed)
    # the model's outputs on rows it did not train on: on training rows it is more confident than
    # on anything a server will see, and the monitor would call every window drifted
    held_out, rows_from = next(((getattr(data, s), s) for s in ("test", "val", "train") if getattr(data, s) is not None))
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x) for x in held_out.x.split(1024)])
    labels = held_out.y if data.task == "classification" else None
    extra: dict[str, Any] = {}
    if not features:  # images, text: the model's own view of its inputs
        emb = embed(model, held_out.x)
        if emb is not None:
            extra["embeddings"] = embedding_profile(emb, seed=seed)
    return {"rows": len(data.train) + (len(data.val) if data.val is not None else 0),
            "features": features, "outputs": output_profile(out, seed=seed), "outputs_from": rows_from, **extra,
            "predictions": {**prediction_profile(out, task=data.task, labels=labels, class_names=data.class_names,
                                                 seed=seed), "rows_from": rows_from}}


class CompressStage:
    """The recipe's compression steps on the final model, each stage read back, tested and timed."""

    name = "compress"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        from honing.pipeline._compress import COMPRESS_DIR, COMPRESS_RESULTS, compress

        section = ctx.recipe.compress
        if section is None:
            ctx.results["compress"] = None
            return None
        spec = section.model_dump(mode="json")
        key = [ctx.model_key, spec]
        stored = ctx.resume(key)
        if stored is None or not (ctx.out_dir / COMPRESS_DIR / COMPRESS_RESULTS).is_file():
            stored = compress(ctx.out_dir, ctx.final_recipe, section, ctx.data, ctx.model,
                              baseline=Path(ctx.results["model_dir"]), progress=ctx.options.progress)
            ctx.keep(key, stored)
        else:
            ctx.say("compress: the stages of an earlier run of this folder are kept (same model, same steps)")
        ctx.results["compress"] = stored
        return {"stages": len(stored["stages"]), "failed": len(stored["failed"])}


class ResultsStage:
    """results.json: every figure of the run beside its baseline, the warnings, the stage records."""

    name = "results"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        results = build_results(ctx)
        for line in results["warnings"]:
            ctx.say(f"warning: {line}")
        write_results(ctx.out_dir, results)
        ctx.results["_written"] = results
        return {"file": RESULTS}


class ReportStage:
    """report.html: the search, the final model, the test, baselines, compression."""

    name = "report"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        if not ctx.recipe.output.report:
            return None
        from honing.pipeline._report import report_data
        from honing.report import write_report

        results = ctx.results["_written"]
        write_report(ctx.out_dir / REPORT, report_data(
            results, study=ctx.study, history=ctx.history, test_extra=ctx.test_extra,
            class_names=ctx.data.class_names, directions=ctx.directions, log_params=_log_params(ctx.recipe)))
        return {"file": REPORT}


# --- results.json --------------------------------------------------------------------------------

# entries of ctx.results that stages above write; anything else a stage adds goes in as it is
_OWN_KEYS = ("final_validation", "imbalance", "primary_metric", "baselines", "vs_baseline", "transfer",
             "compress", "model_dir", "_written")


def build_results(ctx: RunContext) -> dict[str, Any]:
    rec, study, sel, directions = ctx.recipe, ctx.study, ctx.selected, ctx.directions
    r = rec.to_dict()
    timings = _timings(ctx)
    extra = ctx.results
    results: dict[str, Any] = {
        "name": rec.name,
        "task": ctx.data.task,
        "metric": ctx.metric,
        "direction": directions[0] if len(directions) == 1 else directions,
        "best_params": sel["params"] if sel else {},
        "best_value": (sel["values"][0] if sel and len(directions) == 1 else (sel["values"] if sel else None)),
        "best_trial": sel["number"] if sel else None,
        "tie_break": (sel or {}).get("tie_break"),
        "search": ctx.search,
        "trials": dict(study.counts) if study else {},
        "final_model": ctx.final_how,
        "final_validation": extra.get("final_validation"),
        "parameters": count_parameters(ctx.model, trainable_only=False),
        "test_metrics": ctx.test_metrics,
        "transfer": extra.get("transfer"),
        "compress": extra.get("compress"),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seed": rec.seed,
        "versions": versions(),
        "data": ctx.data.summary(),
        "imbalance": extra.get("imbalance"),
        "primary_metric": extra.get("primary_metric"),
        "baselines": extra.get("baselines") or {},
        "vs_baseline": extra.get("vs_baseline"),
        "study": {"name": study.study_name, "storage": mask_password(study.storage_url)} if study else None,
        "recipe": masked_recipe(r),
    }
    if study and len(directions) > 1:
        results["objectives"] = [o.metric for o in rec.tune.objectives]
        results["pareto"] = [{"number": t["number"], "values": t["values"], "params": t["params"]} for t in study.pareto]
    results.update({k: v for k, v in extra.items() if k not in _OWN_KEYS})  # what other stages added
    results["warnings"] = warnings_of(results)
    results["stages"] = list(ctx.records)
    return results


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    atomic_write_text(out_dir / RESULTS, json.dumps(results, indent=2, default=_json_default))


def _timings(ctx: RunContext) -> dict[str, float]:
    """The figures results.json has always had (search, final_training, compress, total)."""
    t = ctx.timings
    out = {"search": sum(t.get(s, 0.0) for s in ("data", "search", "select")) if ctx.study is not None else 0.0,
           "final_training": t.get("final_fit", 0.0) + (t.get("data", 0.0) + t.get("fit", 0.0) if ctx.study is None
                                                         else 0.0)}
    if "compress" in t and ctx.recipe.compress is not None:
        out["compress"] = t["compress"]
    out["total"] = time.perf_counter() - ctx.started
    return out


WEAK_CHECK = 0.9  # data.check_labels: below this out-of-fold agreement, flagged rows are often hard rows


def warnings_of(results: dict[str, Any]) -> list[str]:
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
    for check in (results.get("robustness") or {}).get("checks") or []:
        if not check["passed"]:
            out.append(f"robustness check failed: {check['check']}: {check['detail']}")
    for column, c in ((results.get("fairness") or {}).get("columns") or {}).items():
        ratio = c.get("demographic_parity_ratio")
        if ratio is not None and ratio < 0.8:
            out.append(f"fairness: by {column}, the positive rate of the least-favoured group is {ratio:.2f} of the "
                       "most-favoured one's (below the 80% rule); see results.json 'fairness'")
    issues = (results.get("data") or {}).get("label_issues")
    if issues and issues.get("agreement", 1.0) < WEAK_CHECK:
        out.append(f"data.check_labels: the checking model (a logistic regression) agrees with "
                   f"{100 * issues['agreement']:.0f}% of the labels out of fold: either many labels are wrong, or "
                   "a linear model is too weak for these inputs, and then many of the "
                   f"{issues['found']} rows it flags are hard rows, not wrong labels (on clean Fashion-MNIST it "
                   "agreed with 80% and flagged 13%); look at the rows it lists"
                   + (" before dropping them (check_labels: report)" if issues["action"] == "drop" else ""))
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


def masked_recipe(r: dict[str, Any]) -> dict[str, Any]:
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
