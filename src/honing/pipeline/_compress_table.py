"""The compression table: each stage read back and tested, then all stages timed side by side,
and compared with the uncompressed model."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch

from honing._core import set_threads
from honing.data import Dataset
from honing.models import count_parameters
from honing.artifacts import ONNX_FILE, load_model, model_format, weights_file
from honing.pipeline._objective import median_forward_ms


class Lazy:
    """A note known only after the weights are written."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return self.fn()


def main_metric(recipe: Any, data: Dataset) -> str:
    metrics = recipe.evaluate.metrics
    if metrics:
        return metrics[0]
    return "accuracy" if data.task == "classification" else "mse"


def measure(label: str, folder: Path, data: Dataset, recipe: Any, *,
             extra: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Read the stage back and test it: (its row of the table, the model read back)."""
    from honing.train import resolve_metrics

    loaded = load_model(folder)
    info = loaded.meta.get("compression") or {}
    row: dict[str, Any] = {"stage": label, **extra, "folder": str(folder),
                           "format": info.get("format", "torch"),
                           "runtime": model_format(loaded.meta).runtime,
                           "size_bytes": weights_file(folder, loaded.meta).stat().st_size}
    if info:
        row["parameters"], row["nonzero_parameters"] = info["parameters"], info["nonzero_parameters"]
    else:
        row["parameters"] = count_parameters(loaded.model, trainable_only=False)
        row["nonzero_parameters"] = int(sum(int(torch.count_nonzero(p)) for p in loaded.model.parameters()))
    test = data.test if data.test is not None else data.val
    row["metrics"] = {}
    if test is not None:
        pred = loaded.forward_prepared(test.x).float()
        fns = resolve_metrics(recipe.evaluate.metrics, data.task)
        row["metrics"] = {k: float(fn(pred, test.y)) for k, fn in fns.items()}
        row["metrics_split"] = "test" if data.test is not None else "val"
    if isinstance(row.get("notes"), Lazy):
        row["notes"] = str(row["notes"])
    return row, loaded.inference_model()  # timed as a model folder runs it (batch norm folded)


def time_all(rows: list[dict[str, Any]], models: list[Any], data: Dataset, latency: Any) -> None:
    """Set every row's ``latency_ms``: all stages timed in turn, ``rounds`` times, on test rows."""
    threads = int(latency.threads)
    for row, i in zip(rows, range(len(models))):
        if row["format"] == "onnx" and threads != 1:
            from honing.export import OnnxModel

            models[i] = OnnxModel(Path(row["folder"]) / ONNX_FILE, threads=threads)
    rows_x = next(s for s in (data.test, data.val, data.train) if s is not None).x
    batches = {str(b): _batch(rows_x, b) for b in latency.batch_sizes}
    samples: list[dict[str, list[float]]] = [{b: [] for b in batches} for _ in models]
    previous = torch.get_num_threads()
    set_threads(threads)
    try:
        for _ in range(latency.rounds):
            for model, sample in zip(models, samples):
                for b, x in batches.items():
                    sample[b].append(median_forward_ms(model, x, repeats=latency.repeats))
    finally:
        torch.set_num_threads(previous)
    for row, sample in zip(rows, samples):
        row["latency_ms"] = {b: round(statistics.median(v), 4) for b, v in sample.items()}


def _batch(rows: torch.Tensor, size: int) -> torch.Tensor:
    reps = math.ceil(size / rows.shape[0])
    return (rows.repeat(reps, *([1] * (rows.dim() - 1))) if reps > 1 else rows)[:size].contiguous()


def compare(row: dict[str, Any], base: dict[str, Any], metric: str) -> None:
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    vs: dict[str, Any] = {"size": ratio(row["size_bytes"], base["size_bytes"]),
                          "parameters": ratio(row["parameters"], base["parameters"])}
    for b, ms in row["latency_ms"].items():
        if b in base["latency_ms"]:
            vs[f"latency_{b}"] = ratio(ms, base["latency_ms"][b])
    for k, v in row["metrics"].items():
        if k in base["metrics"]:
            vs[k] = round(v - base["metrics"][k], 6)
    row["vs_uncompressed"] = vs


def summary(row: dict[str, Any], metric: str) -> str:
    vs = row.get("vs_uncompressed", {})
    parts = [f"{metric} {row['metrics'].get(metric, float('nan')):.4f}"] if metric in row["metrics"] else []
    parts.append(f"size {vs.get('size', 1):.2f}x")
    parts += [f"latency b{b} {vs[f'latency_{b}']:.2f}x" for b in row["latency_ms"] if vs.get(f"latency_{b}")]
    return ", ".join(parts)


