"""The server's logged inputs as a data file to label: the way from a drifted window to a refit.

``honing log MODEL_DIR --out FILE`` reads every input log of the serving folder
(``inputs.jsonl``, the workers' ``inputs-K.jsonl`` and their rotated ``.1`` files), oldest row
first, and writes what a refit reads back as its ``--data``:

* tables: a CSV with the model's columns and the target column;
* images and other arrays: an npz with ``x`` (the rows in their logged shape) and ``y``;
* text: a CSV with a ``text`` column and the target column (``text-csv:``).

The target holds the model's own predictions (class names, or values in the target's units):
pre-labels for a person to review and correct. Refitting on them unreviewed teaches the model
nothing it does not already predict, and the command says so.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from honing._core import ConfigError, DataError
from honing.serve._runtime import LOG_FILE, decode_row

__all__ = ["export_log", "read_log"]

DEFAULT_TARGET = "label"  # the target column's name when the model's source had none (sklearn:, npz:)


def _log_files(state: Path) -> list[Path]:
    stem = LOG_FILE.removesuffix(".jsonl")  # inputs.jsonl, the workers' inputs-K.jsonl, their .1 files
    files = [p for p in state.glob(f"{stem}*.jsonl*") if p.name.endswith((".jsonl", ".jsonl.1"))]
    return sorted(files, key=lambda p: (not p.name.endswith(".1"), p.name))


def read_log(state: str | Path) -> list[dict[str, Any]]:
    """Every logged row of a serving folder, oldest first: ``{"t", "row", "prediction"}`` with
    array rows decoded to float32 arrays. Lines that are not whole JSON objects (a write cut
    short by a crash) are skipped."""
    state = Path(state)
    if not state.is_dir():
        raise DataError(f"no serving folder {str(state)!r} (a server writes it on its first request)")
    out: list[dict[str, Any]] = []
    for path in _log_files(state):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or "row" not in entry:
                continue
            out.append({"t": float(entry.get("t") or 0.0), "row": decode_row(entry["row"]),
                        "prediction": entry.get("prediction")})
    out.sort(key=lambda e: e["t"])
    return out


def export_log(model_dir: str | Path, out: str | Path, *, state_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the logged rows of ``model_dir``'s server to ``out`` (see the module docstring).
    Returns ``{"rows", "path", "source", "target", "kind", "first", "last"}``: ``source`` is what
    ``honing refit --data`` takes, ``target`` what ``--target`` takes (None: the file's own)."""
    from honing.artifacts import load_model
    from honing.serve._refit import served_model_folder

    folder, _ = served_model_folder(model_dir)
    model = load_model(folder)
    state = Path(state_dir) if state_dir is not None else Path(model_dir) / "serving"
    entries = read_log(state)
    if not entries:
        raise DataError(f"the serving folder {str(state)!r} has no logged rows (is --log-sample 0?)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = getattr(model.preprocessor, "kind", "")
    targets = [t for t in (model.meta.get("target") or []) if isinstance(t, str) and not t.startswith("(")]
    target = targets[0] if len(targets) == 1 else DEFAULT_TARGET
    preds = [e["prediction"] for e in entries]
    if kind == "tabular" and model.columns is not None:
        if out.suffix.lower() != ".csv":
            raise ConfigError(f"invalid --out {str(out)!r}: a table's rows are written as CSV; allowed: a .csv path")
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([*model.columns, target])
            for e, p in zip(entries, preds):
                w.writerow([*("" if v is None else v for v in e["row"]), _cell(p)])
        source = f"csv:{out}"
    elif kind == "text":
        if out.suffix.lower() != ".csv":
            raise ConfigError(f"invalid --out {str(out)!r}: text rows are written as CSV; allowed: a .csv path")
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", target])
            for e, p in zip(entries, preds):
                w.writerow([e["row"], _cell(p)])
        source = f"text-csv:{out}"
    else:
        if out.suffix.lower() != ".npz":
            raise ConfigError(f"invalid --out {str(out)!r}: array rows are written as npz; allowed: a .npz path")
        x = np.stack([np.asarray(e["row"], dtype=np.float32) for e in entries])
        if model.task == "classification":
            names = [str(c) for c in (model.class_names or [])]
            y = np.asarray([names.index(str(p)) if str(p) in names else int(p) for p in preds], dtype=np.int64)
        else:
            y = np.asarray(preds, dtype=np.float64)
        np.savez(out, x=x, y=y)
        source, target = f"npz:{out}", None
    return {"rows": len(entries), "path": str(out), "source": source, "target": target, "kind": kind or "array",
            "first": entries[0]["t"], "last": entries[-1]["t"]}


def _cell(prediction: Any) -> Any:
    if isinstance(prediction, list):
        if len(prediction) != 1:
            raise DataError(f"a prediction of {len(prediction)} values cannot fill one target column")
        return prediction[0]
    return prediction
