"""The ``fairness`` stage: the final model audited by group on the test rows (the recipe's
``evaluate.groups``; docs/fairness.md): per-group accuracy, F1 and error rates, and the
demographic-parity and equalized-odds gaps for a classifier, per-group errors in the target's
units for a regression model, in results.json (``fairness``), the report and the model card."""

from __future__ import annotations

from typing import Any

from honing.pipeline._context import RunContext
from honing.pipeline._stage_model import _evaluator


class FairnessStage:
    """Per-group metrics and gaps of the final model on the test rows."""

    name = "fairness"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        columns = ctx.recipe.evaluate.groups
        data = ctx.data
        if not columns or ctx.model is None or data is None or data.test is None:
            return None
        key = [ctx.model_key, list(columns)]
        stored = ctx.resume(key)
        if stored is None:
            from honing.fairness import fairness_audit, regression_audit

            pred = _evaluator(ctx.model, ctx.recipe, data).predict(data.test.x)
            if data.task == "classification":
                stored = fairness_audit(data.test.y.numpy(), pred.argmax(1).numpy(), data.groups["test"],
                                        class_names=data.class_names)
            else:  # errors in the target's own units
                inverse = data.preprocessor.inverse_transform_target
                stored = regression_audit(inverse(data.test.y), inverse(pred), data.groups["test"])
            stored["model_inputs"] = ctx.recipe.evaluate.group_inputs
            ctx.keep(key, stored)
        ctx.results["fairness"] = stored
        for column, c in stored["columns"].items():
            ctx.say(f"fairness by {column}: {gap_words(stored, c)} (worst group {c['worst_group']!r})")
        return {"columns": list(stored["columns"])}


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _g(v: float) -> str:  # a regression figure, in the target's units (any size)
    return f"{v:.4g}"


def gap_words(f: dict[str, Any], c: dict[str, Any]) -> str:
    """One column's gaps in words: a classifier's rates, or a regression model's errors."""
    if f.get("task") == "regression":
        return (f"MAE gap {_g(c['mae_difference'])}, mean error gap {_g(c['mean_error_difference'])}, mean "
                f"prediction gap {_g(c['mean_prediction_difference'])} (mean target gap "
                f"{_g(c['mean_target_difference'])})")
    return (f"demographic parity gap {_f(c['demographic_parity_difference'])} (ratio "
            f"{_f(c['demographic_parity_ratio'])}), equalized odds gap {_f(c['equalized_odds_difference'])}, "
            f"accuracy gap {_f(c['accuracy_difference'])}")


REGRESSION_COLUMNS = ("mae", "rmse", "mean_error", "mean_prediction", "mean_target")


def fairness_tables(f: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The report's tables: one per group column, a row per group, the gaps in the note."""
    if not f or f.get("skipped"):
        return []
    out = []
    positive = f"positive class {f['positive_class']!r}" if f.get("positive_class") else \
        "rates averaged over classes, each against the rest"
    if f.get("task") == "regression":
        for column, c in f["columns"].items():
            gaps = gap_words(f, c)
            note = (f"Test rows by {column}, in the target's units ({column} is "
                    f"{'an input' if f.get('model_inputs', True) else 'not an input'} of the model; mean error: "
                    f"prediction minus truth). {gaps[0].upper() + gaps[1:]}."
                    + (f" Fewer than 30 rows, so noisy: {', '.join(c['few_rows'])}." if c["few_rows"] else ""))
            rows = [[g, r["rows"], *(_g(r[k]) for k in REGRESSION_COLUMNS)] for g, r in c["groups"].items()]
            out.append({"title": f"Fairness audit: {column}", "note": note, "rows": rows,
                        "columns": ["group", "rows", "MAE", "RMSE", "mean error", "mean prediction", "mean target"]})
        return out
    for column, c in f["columns"].items():
        note = (f"Test rows by {column} ({positive}; {column} is {'an input' if f.get('model_inputs', True) else 'not an input'} "
                f"of the model). Demographic parity gap {_f(c['demographic_parity_difference'])} (ratio "
                f"{_f(c['demographic_parity_ratio'])}; the 80% rule asks >= 0.8), equalized odds gap "
                f"{_f(c['equalized_odds_difference'])}, accuracy gap {_f(c['accuracy_difference'])}."
                + (f" Fewer than 30 rows, so noisy: {', '.join(c['few_rows'])}." if c["few_rows"] else ""))
        rows = [[g, r["rows"], *(_f(r[k]) for k in ("accuracy", "f1", "positive_rate", "tpr", "fpr", "fnr"))]
                for g, r in c["groups"].items()]
        out.append({"title": f"Fairness audit: {column}", "note": note, "rows": rows,
                    "columns": ["group", "rows", "accuracy", "F1", "positive rate", "TPR", "FPR", "FNR"]})
    return out


def fairness_card_lines(f: dict[str, Any] | None) -> list[str]:
    """The model card's section (Markdown)."""
    if not f or f.get("skipped"):
        return []
    lines = ["## Fairness audit (held-out test rows)", ""]
    if f.get("task") == "regression":  # errors in the target's units
        header, units = "| group | rows | MAE | mean error | mean prediction | mean target |", "; in the target's units"
        cells = lambda r: [_g(r[k]) for k in ("mae", "mean_error", "mean_prediction", "mean_target")]  # noqa: E731
    else:
        header, units = "| group | rows | accuracy | positive rate | TPR | FPR |", ""
        cells = lambda r: [_f(r[k]) for k in ("accuracy", "positive_rate", "tpr", "fpr")]  # noqa: E731
    for column, c in f["columns"].items():
        role = "an input of the model" if f.get("model_inputs", True) else "not an input of the model"
        lines += [f"By `{column}` ({role}{units}): {gap_words(f, c)}.", "", header, "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join([g, str(r["rows"]), *cells(r)]) + " |" for g, r in c["groups"].items()]
        lines.append("")
    return lines
