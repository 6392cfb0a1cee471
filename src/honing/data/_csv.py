"""CSV tables with the csv module: header row, numeric/categorical detection, missing values."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from honing._core import ConfigError, DataError
from honing.data._preprocess import is_missing


@dataclass
class Table:
    x: np.ndarray  # (N, F) float64 when every feature is numeric, else object (floats / str / None)
    y: np.ndarray  # (N,) or (N, k): float64 when numeric, else object strings
    columns: list[str]
    kinds: list[str]  # "numeric" | "categorical" per feature column
    target: list[str]
    dropped_missing_target: int
    rows: list[int] | None = None  # each kept row's position among the file's data rows (0: the first)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def read_csv_table(
    path: str | os.PathLike[str],
    *,
    target: str | Sequence[str] | None = None,
    delimiter: str | None = None,
    drop_columns: Sequence[str] = (),
) -> Table:
    """Read a CSV file with a header row.

    ``target``: the target column name (or a list of names for multi-output regression);
    default: the one column named ``target``, ``label``, ``class`` or ``y`` (any case), else a
    DataError listing the columns (never a guess). Rows whose target is missing are dropped. A feature column is
    numeric when every non-missing cell parses as a number, categorical otherwise.
    """
    path = Path(path)
    delimiter = csv_delimiter(path, delimiter)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"CSV file {str(path)!r} is empty (a header row is needed)")
            header = [h.strip() for h in header]
            rows: list[list[str]] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{str(path)!r} line {reader.line_num}: {len(row)} fields but the header has {len(header)}"
                    )
                rows.append(row)
        except UnicodeDecodeError as err:
            raise DataError(f"CSV file {str(path)!r} is not UTF-8 text ({err.reason} "
                            f"after line {reader.line_num}); allowed: a UTF-8 text file with a header row "
                            "(re-save it as UTF-8)") from None
        except csv.Error as err:
            raise DataError(f"CSV file {str(path)!r} line {reader.line_num}: {err}; allowed: text CSV "
                            "(a binary file?)") from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{str(path)!r}: duplicate column names {dupes}")
    if not rows:
        raise DataError(f"CSV file {str(path)!r} has a header but no rows")

    targets = [default_target(header, path)] if target is None else [target] if isinstance(target, str) else list(target)
    for name in [*targets, *drop_columns]:
        if name not in header:
            role = "target" if name in targets else "drop_columns"
            raise DataError(f"{role} column {name!r} not found in {str(path)!r}; columns: {', '.join(header)}")
    features = [h for h in header if h not in targets and h not in drop_columns]
    if not features:
        raise DataError(f"{str(path)!r}: no feature columns left besides the target {targets}")

    cols = {h: [r[j].strip() for r in rows] for j, h in enumerate(header)}
    keep = [i for i in range(len(rows)) if not any(is_missing(cols[t][i]) for t in targets)]
    dropped = len(rows) - len(keep)
    if not keep:
        raise DataError(f"{str(path)!r}: every row has a missing target {targets}")

    kinds: list[str] = []
    values: list[list[object]] = []
    for name in features:
        cells = [cols[name][i] for i in keep]
        if all(is_missing(c) or _is_number(c) for c in cells):
            kinds.append("numeric")
            values.append([np.nan if is_missing(c) else float(c) for c in cells])
        else:
            kinds.append("categorical")
            values.append([None if is_missing(c) else c for c in cells])
    dtype = np.float64 if all(k == "numeric" for k in kinds) else object
    x = np.empty((len(keep), len(features)), dtype=dtype)
    for j, column in enumerate(values):
        x[:, j] = column

    tcells = [[cols[t][i] for i in keep] for t in targets]
    if all(_is_number(c) for col in tcells for c in col):
        y = np.asarray(tcells, dtype=np.float64).T
    elif len(targets) > 1:
        raise DataError(f"{str(path)!r}: several target columns {targets} need numbers (multi-output regression)")
    else:
        y = np.asarray(tcells, dtype=object).T
    y = y[:, 0] if len(targets) == 1 else y
    return Table(x, y, features, kinds, targets, dropped, keep)


TARGET_NAMES = ("target", "label", "class", "y")  # a column so named is the target when none is given


def default_target(header: list[str], path: Path | str) -> str:
    """The target column when none is given: the one column named as in TARGET_NAMES (any case)."""
    named = [h for h in header if h.strip().lower() in TARGET_NAMES]
    if len(named) == 1:
        return named[0]
    why = (f"several columns could be the target ({', '.join(map(repr, named))})" if named else
           f"no column is named {', '.join(map(repr, TARGET_NAMES))}")
    raise DataError(f"{str(path)!r}: which column is the target? {why}; set data.target (target= in "
                    f"honing.data.load) to one of: {', '.join(header)}")


def csv_delimiter(path: Path, delimiter: str | None) -> str:
    """Check that the CSV file exists; the delimiter to read it with (tab for .tsv/.tab, else comma)."""
    if not path.is_file():
        raise DataError(f"CSV file not found: {str(path)!r}")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"invalid delimiter: got {delimiter!r}; allowed: a single character or None")
    return delimiter
