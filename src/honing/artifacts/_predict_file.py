"""``honing predict``: a file of new rows through a saved model into a CSV of predictions, a chunk
at a time so a large file never sits in memory whole."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from honing._core import ConfigError, DataError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def _chunks(model: Any, path: Path, chunk_rows: int) -> Iterator[tuple[Any, Any]]:
    """(what the model takes, the input's own columns as a DataFrame or None) per chunk."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:  # never unpickle a user's file
            if "x" not in arrays.files:
                raise DataError(f"{str(path)!r}: no array named x; allowed: an .npz with x (rows first); it has "
                                f"{', '.join(arrays.files) or 'no arrays'}")
            x = arrays["x"]
        for i in range(0, len(x), chunk_rows):
            yield x[i:i + chunk_rows], None
        return
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"invalid input {str(path)!r}: allowed: a .csv, .tsv or .tab table, or an .npz with an "
                          "array x")
    import pandas as pd

    text = getattr(model.preprocessor, "kind", "") == "text"
    column = (model.recipe.get("data") or {}).get("text_column") or "text"
    for frame in pd.read_csv(path, sep=TABLE_SUFFIXES[suffix], chunksize=chunk_rows,
                             dtype=str if text else None, keep_default_na=not text):
        if text:
            if column not in frame.columns:
                raise DataError(f"{str(path)!r}: no column {column!r} with the texts; allowed: a table with that "
                                f"column (it has {', '.join(map(str, frame.columns))})")
            yield frame[column].tolist(), frame
        else:
            wanted = model.columns or []
            if wanted and set(wanted) <= set(map(str, frame.columns)):  # other columns (ids, ...) are not inputs
                yield frame[wanted], frame
            else:  # a missing column: the model's own error names it
                yield frame, frame


FORMS = ("csv", "text-csv", "npz")  # a recipe's source forms that name a file: the same words work here


def _without_form(given: str) -> str:
    """``csv:new.csv`` (a recipe's source form) -> ``new.csv``; a path as it is otherwise (a file
    whose own name has a colon is still found)."""
    form, colon, rest = given.partition(":")
    if colon and form.lower() in FORMS and rest and not Path(given).is_file():
        return rest
    return given


def predict_file(model_dir: str | os.PathLike[str], path: str | os.PathLike[str], *, out: str | None = None,
                 proba: bool = False, keep_columns: bool = False, chunk_rows: int = 10_000) -> int:
    """Predict every row of ``path`` (a CSV/TSV: columns matched by name, other columns such as
    the target or ids ignored and named on standard error;
    a text model reads its text column; or an .npz with an array ``x``) with the model folder's
    model, writing a CSV to ``out`` (None: standard output): ``prediction`` (a class name, or a
    value in the target's units; ``prediction_<target>`` per target for several), ``probability_<class>``
    with ``proba``, after the input's own columns with ``keep_columns``. Returns the rows written."""
    from honing.artifacts import load_model

    model = load_model(model_dir)
    path = Path(_without_form(str(path)))
    if not path.is_file():
        raise ConfigError(f"invalid input {str(path)!r}: no such file")
    if proba and model.task != "classification":
        raise ConfigError(f"invalid --proba: the model does {model.task}; allowed: a classifier")
    targets = (model.meta.get("target") or (model.recipe.get("data") or {}).get("target") or [])
    targets = [targets] if isinstance(targets, str) else list(targets)
    handle = open(out, "w", newline="", encoding="utf-8") if out else io.TextIOWrapper(
        sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    rows = 0
    try:
        writer = csv.writer(handle)
        for i, (given, frame) in enumerate(_chunks(model, path, chunk_rows)):
            if i == 0 and frame is not None and model.columns:  # the target, ids, ...: said once
                ignored = [str(c) for c in frame.columns if str(c) not in model.columns]
                if ignored:
                    print(f"honing: note: columns that are not the model's inputs, ignored: {', '.join(ignored)}",
                          file=sys.stderr)
            pred = model.predict(given)
            columns: dict[str, Any] = {}
            if pred.ndim == 2:  # several regression targets
                names = targets if len(targets) == pred.shape[1] else [str(j) for j in range(pred.shape[1])]
                columns.update({f"prediction_{n}": pred[:, j] for j, n in enumerate(names)})
            else:
                columns["prediction"] = pred
            if proba:
                p = model.predict_proba(given)
                names = model.class_names or [str(j) for j in range(p.shape[1])]
                columns.update({f"probability_{n}": p[:, j] for j, n in enumerate(names)})
            if keep_columns and frame is not None:
                clash = sorted(set(map(str, frame.columns)) & set(columns))
                if clash:
                    raise ConfigError(f"invalid --keep-columns: the input already has column(s) {', '.join(clash)}; "
                                      "allowed: an input without them, or leave --keep-columns out")
                columns = {**{str(c): frame[c].to_numpy() for c in frame.columns}, **columns}
            if i == 0:
                writer.writerow(columns)
            writer.writerows(zip(*(_cells(v) for v in columns.values())))
            rows += len(pred)
    finally:
        if out:
            handle.close()
        else:
            handle.detach()  # leave sys.stdout open
    return rows


def _cells(values: Any) -> list[Any]:
    """A column's cells as CSV writes them: floats to 7 significant digits (float32 precision)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return [f"{v:.7g}" for v in arr]
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in arr.tolist()]
