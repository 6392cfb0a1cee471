"""``reference.json``: the drift reference saved beside a model (see ``honing.data._profile``).

Read back as untrusted input like every file of the folder: the keys and types the drift
monitor relies on are checked, numbers must be finite, sizes are bounded; anything wrong raises
DataError naming the folder, the file and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from honing._core import DataError, atomic_write_text
from honing.artifacts._folder import _read_json
from honing.data import PROFILE_VERSION

REFERENCE = "reference.json"
_MAX_SAMPLE = 100_000


def write_reference(folder: str | Path, reference: dict[str, Any]) -> Path:
    path = Path(folder) / REFERENCE
    atomic_write_text(path, json.dumps({"version": PROFILE_VERSION, **reference}, separators=(",", ":")))
    return path


def find_reference(folder: str | Path) -> Path | None:
    """The reference of a model folder: its own, else (a compressed variant ``RUN/compress/NN-step``)
    the run's ``model/reference.json`` or ``compress/00-uncompressed/reference.json``; None when
    there is none."""
    folder = Path(folder)
    for candidate in (folder / REFERENCE, folder.parent.parent / "model" / REFERENCE,
                      folder.parent / "00-uncompressed" / REFERENCE):
        if candidate.is_file():
            return candidate
    return None


def read_reference(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        found = find_reference(path)
        if found is None:
            raise DataError(f"model folder {str(path)!r} has no {REFERENCE} (models saved before honing kept a drift "
                            "reference have none: run or train again, or pass --reference)")
        path = found
    try:
        return _check(_read_json(path))  # the folder's own reader: size bound, JSON errors as DataError
    except DataError as err:
        raise DataError(f"invalid drift reference {str(path)!r}: {err}") from None


def _numbers(values: Any, where: str) -> list[float]:
    if not isinstance(values, list) or len(values) > _MAX_SAMPLE:
        raise DataError(f"{where}: expected a list of at most {_MAX_SAMPLE} numbers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise DataError(f"{where}: expected finite numbers, got {v!r}")
    return values


def _counts(counts: Any, where: str) -> dict[str, int]:
    if not isinstance(counts, dict) or len(counts) > _MAX_SAMPLE:
        raise DataError(f"{where}: expected an object of category -> count")
    for k, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DataError(f"{where}[{k!r}]: expected a count >= 0, got {v!r}")
    return counts


def _check(ref: Any) -> dict[str, Any]:
    if not isinstance(ref, dict):
        raise DataError("expected a JSON object")
    if ref.get("version") != PROFILE_VERSION:
        raise DataError(f"version {ref.get('version')!r}; allowed: {PROFILE_VERSION}")
    features = ref.get("features") or []
    if not isinstance(features, list):
        raise DataError("features: expected a list")
    for i, f in enumerate(features):
        where = f"features[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or f.get("kind") not in ("numeric", "categorical"):
            raise DataError(f"{where}: expected {{name, kind: numeric|categorical, ...}}")
        if f["kind"] == "numeric":
            _numbers(f.get("sample"), f"{where}.sample")
        else:
            _counts(f.get("counts"), f"{where}.counts")
    outputs = ref.get("outputs") or []
    if not isinstance(outputs, list) or len(outputs) > _MAX_SAMPLE:
        raise DataError("outputs: expected a list of rows")
    widths = {len(_numbers(row, f"outputs[{i}]")) for i, row in enumerate(outputs)}
    if len(widths) > 1:
        raise DataError(f"outputs: rows of different lengths {sorted(widths)}")
    emb = ref.get("embeddings")
    if emb is not None:
        if not isinstance(emb, dict) or not isinstance(emb.get("rows"), list) or len(emb["rows"]) > _MAX_SAMPLE:
            raise DataError("embeddings: expected {rows: [[number]], width, projection_seed}")
        widths = {len(_numbers(row, f"embeddings.rows[{i}]")) for i, row in enumerate(emb["rows"])}
        if len(widths) > 1:
            raise DataError(f"embeddings.rows: rows of different lengths {sorted(widths)}")
        for key in ("width", "projection_seed"):
            if isinstance(emb.get(key), bool) or not isinstance(emb.get(key), int) or emb[key] < 0:
                raise DataError(f"embeddings.{key}: expected an integer >= 0, got {emb.get(key)!r}")
    pred = ref.get("predictions")
    if pred is not None:
        if not isinstance(pred, dict) or pred.get("kind") not in ("classes", "values"):
            raise DataError("predictions: expected {kind: classes|values, ...}")
        if pred["kind"] == "classes":
            _counts(pred.get("counts"), "predictions.counts")
            for key in ("accuracy", "confidence"):
                if key in pred:
                    _numbers([pred[key]], f"predictions.{key}")
        else:
            _numbers(pred.get("sample"), "predictions.sample")
    return ref
