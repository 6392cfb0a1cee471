"""MODEL_CARD.md: what a model folder holds, for the person who deploys or audits it.

Written from results.json by the ``card`` stage (after ``results``) into the model folder:
the data and its splits, the target, the test metrics beside the baselines, the search that
chose the model, the compression table, the drift reference, intended use and limits. Every
figure comes from results.json; nothing is measured again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from honing._core import atomic_write_text
from honing.pipeline._context import RunContext
from honing.pipeline._fairness import fairness_card_lines

CARD = "MODEL_CARD.md"


class CardStage:
    name = "card"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        folder = ctx.results.get("model_dir")
        if not folder:
            return None
        atomic_write_text(Path(folder) / CARD, model_card(ctx.results["_written"]))
        return {"file": str(Path(folder) / CARD)}


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(results: dict[str, Any]) -> str:
    data = results.get("data") or {}
    lines = [f"# Model card: {results.get('name')}", ""]
    task = results.get("task")
    target = ", ".join(map(str, data.get("target") or []))
    lines += ["## What it does", "",
              f"A {task} model trained by honing from `{data.get('source')}`; target: {target} "
              f"({data.get('target_from', '')}). It takes the input columns and preprocessing recorded in "
              "`preprocessor.json` and predicts "
              + ("one of the classes below." if task == "classification" else "the target in its own units."), ""]
    rows = data.get("rows") or {}
    lines += ["## Data", "",
              f"- rows read: {data.get('rows_read')}; train / validation / test: "
              f"{rows.get('train', 0)} / {rows.get('val', 0)} / {rows.get('test', 0)} ({data.get('test_rows_from')})"]
    if data.get("dropped"):
        lines.append(f"- dropped: {', '.join(f'{k} {v}' for k, v in data['dropped'].items())}")
    if data.get("columns"):
        lines.append(f"- columns: {data['columns']['numeric']} numeric, {data['columns']['categorical']} categorical; "
                     f"values imputed: {(data.get('imputed') or {}).get('values', 0)}")
    if data.get("classes"):
        lines.append("- rows per class (train/val/test): " + "; ".join(
            f"{name} {c.get('train', 0)}/{c.get('val', 0)}/{c.get('test', 0)}" for name, c in data["classes"].items()))
    lines.append("")
    metrics = results.get("test_metrics") or {}
    baselines = results.get("baselines") or {}
    lines += ["## How well it does (held-out test rows, scored once)", ""]
    if metrics:
        names = list(metrics)
        lines.append("| model | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        lines.append("| **this model** | " + " | ".join(_fmt(metrics[n]) for n in names) + " |")
        for base, entry in baselines.items():
            got = (entry or {}).get("metrics") or {}
            lines.append(f"| {base} | " + " | ".join(_fmt(got.get(n, "")) for n in names) + " |")
        vs = results.get("vs_baseline") or {}
        if vs:
            verdict = "better than" if vs.get("better") else "NOT better than"
            lines += ["", f"On {vs.get('metric')}, the model is {verdict} the best baseline ({vs.get('best_baseline')})."]
    else:
        lines.append("No test rows were held out (test_size: 0): no test metrics.")
    lines.append("")
    trials = results.get("trials") or {}
    lines += ["## How it was chosen", ""]
    if trials:
        lines.append(f"- search: {sum(trials.values())} trials ({', '.join(f'{k} {v}' for k, v in trials.items() if v)}), "
                     f"metric {results.get('metric')}, best value {_fmt(results.get('best_value'))}")
        if results.get("best_params"):
            lines.append("- chosen parameters: " + ", ".join(f"`{k}={v}`" for k, v in results["best_params"].items()))
        validation = (results.get("search") or {}).get("validation")
        if validation:
            lines.append(f"- validation: {validation}")
    lines.append(f"- final model: {results.get('final_model')}; {results.get('parameters')} parameters; seed "
                 f"{results.get('seed')}")
    lines.append("")
    compress = results.get("compress") or {}
    if compress.get("stages"):
        metric = compress.get("metric")
        lines += ["## Compressed variants", "", f"| stage | runtime | size (bytes) | {metric} |", "|---|---|---|---|"]
        for row in compress["stages"]:
            lines.append(f"| {row['stage']} | {row['runtime']} | {row['size_bytes']} | "
                         f"{_fmt((row.get('metrics') or {}).get(metric, ''))} |")
        lines.append("")
    lines += fairness_card_lines(results.get("fairness"))
    lines += ["## Drift reference", "",
              "`reference.json` holds the training rows' feature distributions and the model's outputs and "
              "predictions on held-out rows; `honing serve` compares live inputs with it (`GET /drift`) and "
              "`honing drift MODEL --data SOURCE` does so offline.", ""]
    lines += ["## Intended use and limits", "",
              f"- Use it on rows like the training data: the same columns and units, from the same population as "
              f"`{data.get('source')}`. Outside that range its scores above do not hold; watch `GET /drift`.",
              "- The test metrics come from one held-out split and one seed; small test sets make them coarse.",
              "- It learned whatever bias the training rows carry; no fairness audit was run unless this card "
              "says so." if not (results.get("fairness") or {}).get("columns") else
              "- It learned whatever bias the training rows carry; the audit above covers only the columns it names."]
    for warning in results.get("warnings") or []:
        lines.append(f"- Warning from the run: {warning}")
    lines += ["", f"Made by honing {(results.get('versions') or {}).get('honing', '')}.", ""]
    return "\n".join(lines)
