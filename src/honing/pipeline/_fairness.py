"""The ``fairness`` stage: the final model audited by group on the test rows (the recipe's
``evaluate.groups``; docs/fairness.md): per-group accuracy, F1 and error rates, and the
demographic-parity and equalized-odds gaps, in results.json (``fairness``), the report and the
model card."""

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
        if data.task != "classification":
            ctx.note(f"fairness: skipped: the audit compares classification outcomes; this is a {data.task} task")
            ctx.results["fairness"] = {"skipped": f"a {data.task} task (the audit compares classification outcomes)"}
            return None
        key = [ctx.model_key, list(columns)]
        stored = ctx.resume(key)
        if stored is None:
            from honing.fairness import fairness_audit

            pred = _evaluator(ctx.model, ctx.recipe, data).predict(data.test.x).argmax(1)
            stored = fairness_audit(data.test.y.numpy(), pred.numpy(), data.groups["test"],
                                    class_names=data.class_names)
            stored["model_inputs"] = ctx.recipe.evaluate.group_inputs
            ctx.keep(key, stored)
        ctx.results["fairness"] = stored
        for column, c in stored["columns"].items():
            ctx.say(f"fairness by {column}: demographic parity gap {_f(c['demographic_parity_difference'])}, "
                    f"equalized odds gap {_f(c['equalized_odds_difference'])}, accuracy gap "
                    f"{_f(c['accuracy_difference'])} (worst group {c['worst_group']!r})")
        return {"columns": list(stored["columns"])}


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def fairness_tables(f: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The report's tables: one per group column, a row per group, the gaps in the note."""
    if not f or f.get("skipped"):
        return []
    out = []
    positive = f"positive class {f['positive_class']!r}" if f.get("positive_class") else \
        "rates averaged over classes, each against the rest"
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
    for column, c in f["columns"].items():
        lines += [f"By `{column}` ({'an input of the model' if f.get('model_inputs', True) else 'not an input of the model'}):"
                  f" demographic parity gap {_f(c['demographic_parity_difference'])}, equalized odds gap "
                  f"{_f(c['equalized_odds_difference'])}, accuracy gap {_f(c['accuracy_difference'])}.", "",
                  "| group | rows | accuracy | positive rate | TPR | FPR |", "|---|---|---|---|---|---|"]
        lines += [f"| {g} | {r['rows']} | {_f(r['accuracy'])} | {_f(r['positive_rate'])} | {_f(r['tpr'])} | "
                  f"{_f(r['fpr'])} |" for g, r in c["groups"].items()]
        lines.append("")
    return lines
