"""Plain-text lines about a run's data and its baselines, for the console (``honing run``,
``honing train``, ``honing show``)."""

from __future__ import annotations

import sys
import time
from typing import Any

from honing.train import Callback


def data_lines(summary: dict[str, Any]) -> list[str]:
    """What was read and what the preparation did: target, rows, drops, imputation, classes."""
    target = ", ".join(map(str, summary.get("target") or []))
    lines = [f"data: {summary['source']} ({summary['task']}); target: {target} "
             f"[{summary.get('target_from', '')}]"]
    rows = summary.get("rows") or {}
    dropped = summary.get("dropped") or {}
    read = summary.get("rows_read")
    drops = ", ".join(f"{n} {_DROP_WORDS.get(k, k)} dropped" + (f" ({100 * n / read:.1f}%)" if read else "")
                      for k, n in dropped.items())
    split = ", ".join(f"{k} {v}" for k, v in rows.items())
    test_from = summary.get("test_rows_from")
    lines.append(f"  rows: {read} read" + (f", {drops}" if drops else "") + f"; {split}"
                 + (f" (test: {test_from})" if test_from and "test" in rows else ""))
    lines += label_lines(summary.get("label_issues"))
    scaled = summary.get("scale_target")
    if scaled and scaled.get("on"):
        lines.append("  target standardized for training (" + ("the default for regression; data.scale_target: "
                     "false turns it off" if scaled.get("origin") == "default" else f"{scaled.get('origin')}")
                     + "); metrics and predictions in the target's units")
    columns = summary.get("columns")
    if columns:
        imputed = summary.get("imputed") or {}
        text = f"  columns: {columns['numeric']} numeric, {columns['categorical']} categorical"
        if imputed.get("values"):
            worst = sorted(imputed["columns"].items(), key=lambda kv: -kv[1])[:4]
            text += (f"; {imputed['values']} missing values imputed ("
                     + ", ".join(f"{c} {n}" for c, n in worst) + (", ..." if len(imputed["columns"]) > 4 else "")
                     + f"; numeric with the {imputed['numeric_with']}, categorical with the most frequent)")
        else:
            text += "; no missing values"
        groups = summary.get("groups")
        if groups and not groups.get("model_inputs", True):
            text += f"; kept out of the model's inputs (audited only): {', '.join(groups['columns'])}"
        lines.append(text)
    classes = summary.get("classes")
    if classes:
        shown = list(classes.items())
        cells = [f"{name} {'/'.join(str(c) for c in counts.values())}" for name, counts in shown[:12]]
        splits = "/".join(next(iter(classes.values())).keys())
        lines.append(f"  rows per class ({splits}): " + ", ".join(cells)
                     + (f", ... ({len(shown)} classes)" if len(shown) > 12 else ""))
    return lines


def label_lines(issues: dict[str, Any] | None) -> list[str]:
    """``data.check_labels``: how many labels look wrong, what was done with them, the worst one."""
    if not issues:
        return []
    if not issues["found"]:
        return [f"  labels: none of the {issues['checked']} train+validation rows looks mislabelled ({issues['how']}, "
                f"which agrees with {100 * issues.get('agreement', float('nan')):.1f}% of the labels)"]
    done = (f"{issues['dropped']} training rows dropped, {issues['val']} validation rows kept"
            if issues["action"] == "drop" else "kept (data.check_labels: report; drop leaves the training ones out)")
    line = (f"  labels: {issues['found']} of {issues['checked']} train+validation rows look mislabelled "
            f"({issues['train']} training, {issues['val']} validation; {issues['how']}, which agrees with "
            f"{100 * issues.get('agreement', float('nan')):.1f}% of the labels): {done}")
    out = [line]
    if issues.get("rows"):
        worst = issues["rows"][:3]
        out.append("    least likely: " + "; ".join(
            f"{r['split']} row {r['row']} given {r['given']!r}, likely {r['suggested']!r} "
            f"(p of the given label {r['confidence']:.2f})" for r in worst)
            + f"; results.json data.label_issues lists {len(issues['rows'])}")
    return out


_DROP_WORDS = {"duplicates": "duplicate rows", "missing_target": "rows without a target",
               "empty_text": "rows with empty text", "other_classes": "rows of other labels"}


def baseline_lines(results: dict[str, Any]) -> list[str]:
    """honing's test score beside each baseline's, on the primary metric and the others."""
    baselines = results.get("baselines") or {}
    metrics = results.get("test_metrics") or {}
    primary = results.get("primary_metric")
    if not baselines or not metrics:
        return []
    keys = [primary] + [k for k in metrics if k not in (primary, "loss")] if primary else [
        k for k in metrics if k != "loss"]
    keys = keys[:4]
    lines = ["  test rows, honing vs baselines (same split):",
             f"    {'':<28}" + "".join(f"{k:>18}" for k in keys)]
    lines.append(f"    {'honing (this model)':<28}" + "".join(f"{metrics[k]:>18.4f}" for k in keys))
    for name, entry in baselines.items():
        if "metrics" not in entry:
            lines.append(f"    {name:<28}  skipped: {entry.get('error', '')[:80]}")
            continue
        lines.append(f"    {name:<28}" + "".join(f"{entry['metrics'].get(k, float('nan')):>18.4f}" for k in keys))
    vs = results.get("vs_baseline")
    if vs:
        verdict = "better than" if vs["better"] else "NOT better than"
        lines.append(f"    -> honing is {verdict} the best baseline ({vs['best_baseline']}) on {vs['metric']}")
    return lines


class EpochProgress(Callback):
    """Progress of one training on stderr: a tqdm bar on a terminal, else one line per epoch
    (epoch, loss, validation values, time), prefixed by ``label``."""

    def __init__(self, label: str = "train") -> None:
        self.label, self.bar, self.start = label, None, time.time()
        self.tty = sys.stderr.isatty()

    def on_fit_start(self, trainer: Any) -> None:
        self.start = time.time()
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.config.epochs, initial=trainer.epoch, unit="epoch", desc=self.label,
                            file=sys.stderr, dynamic_ncols=True)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        shown = {k: v for k, v in logs.items() if k == "loss" or k.startswith("val_")}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in list(shown.items())[:3]}, refresh=True)
            return
        values = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"honing: {self.label}: epoch {epoch}/{trainer.config.epochs}: {values} "
              f"({time.time() - self.start:.1f}s)", file=sys.stderr, flush=True)

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
