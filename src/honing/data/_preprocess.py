"""Preprocessing fitted on the training rows only: imputation, categorical encoding, scaling.

Three kinds, one interface (``fit`` / ``transform`` / ``state_dict`` / ``from_state_dict``):
:class:`TabularPreprocessor` here for rows of named columns (numeric and categorical),
``ArrayPreprocessor`` (``_array.py``) for images, sequences and flat pixel vectors, and
``TextPreprocessor`` (``_text.py``) for strings -> token ids.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from honing._core import ConfigError, DataError, check_choice

SCALES = ("standard", "minmax", None)
ENCODINGS = ("onehot", "index")
IMPUTES = ("mean", "median", "most_frequent", None)
MISSING_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


def is_missing(value: Any) -> bool:
    """None, NaN, or a string such as ``""``, ``"NA"``, ``"nan"``, ``"?"``."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, str):
        return value.strip().lower() in MISSING_STRINGS
    return False


def to_category(value: Any) -> str | None:
    """The category string of a raw value (None when missing); 3.0 and "3" are the same category."""
    if is_missing(value):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _to_float(value: Any, column: str) -> float:
    if is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"column {column!r} is numeric but holds {value!r}") from None


def _numpy(raw: Any) -> np.ndarray:
    if isinstance(raw, torch.Tensor):
        return raw.detach().cpu().numpy()
    arr = np.asarray(raw)
    return arr.astype(object) if arr.dtype.kind in "US" else arr


PREPROCESSOR_KINDS: dict[str, type[Preprocessor]] = {}  # kind -> class; subclasses add themselves


class Preprocessor:
    """Base class: optional target standardization (regression) and state-dict dispatch."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass with a ``kind`` is what ``from_state_dict`` rebuilds for that kind."""
        super().__init_subclass__(**kwargs)
        if cls.kind:
            PREPROCESSOR_KINDS[cls.kind] = cls

    @classmethod
    def _options_from_state(cls, options: dict[str, Any], state: dict[str, Any],
                            base_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
        """The constructor's keyword arguments from a saved state's options."""
        if "sample_shape" in options:
            options["sample_shape"] = tuple(options["sample_shape"])
        return options

    def __init__(self, *, scale_target: bool = False) -> None:
        self.scale_target = bool(scale_target)
        self.target_mean: list[float] | None = None
        self.target_std: list[float] | None = None
        self.fitted = False

    # -- interface ---------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _fit_x(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _transform_x(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_stats(self, stats: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def fit(self, raw_x: Any, y: Any = None) -> Preprocessor:
        """Learn the statistics from training rows (and training targets if ``scale_target``)."""
        self._fit_x(_numpy(raw_x))
        if self.scale_target:
            if y is None:
                raise ConfigError("scale_target=True needs the training targets: call fit(raw_x, y)")
            yy = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            std = yy.std(axis=0)
            self.target_mean = [float(v) for v in yy.mean(axis=0)]
            self.target_std = [float(s) if s > 0 and np.isfinite(s) else 1.0 for s in std]
        self.fitted = True
        return self

    def imputed_cells(self, raw_x: Any) -> np.ndarray | None:
        """``(N, *input_shape)`` booleans: the output cells of these rows that imputation filled
        (None: this preprocessor imputes nothing)."""
        return None

    def transform(self, raw_x: Any) -> torch.Tensor:
        """Raw rows (as the source gives them) -> float32 tensor ``(N, *input_shape)``."""
        if not self.fitted:
            raise ConfigError(f"{type(self).__name__} is not fitted: call fit(raw_x) first")
        return torch.from_numpy(self._transform_x(_numpy(raw_x)))

    def fit_transform(self, raw_x: Any, y: Any = None) -> torch.Tensor:
        return self.fit(raw_x, y).transform(raw_x)

    def transform_target(self, y: Any) -> torch.Tensor:
        """Regression targets -> float32 ``(N, k)``, standardized when ``scale_target``."""
        t = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(len(y), -1)
        if self.scale_target and self.target_mean is not None:
            t = (t - torch.tensor(self.target_mean)) / torch.tensor(self.target_std)
        return t.float()

    def inverse_transform_target(self, y: Any) -> Any:
        """Model outputs (a tensor or a numpy array, ``(N, k)``) back in target units, of the
        same kind as given (identity unless ``scale_target``)."""
        if not (self.scale_target and self.target_mean is not None):
            return y
        if not isinstance(y, torch.Tensor):
            arr = np.asarray(y, dtype=np.float64)
            return arr * np.asarray(self.target_std) + np.asarray(self.target_mean)
        mean = torch.tensor(self.target_mean, dtype=y.dtype, device=y.device)
        std = torch.tensor(self.target_std, dtype=y.dtype, device=y.device)
        return y * std + mean

    def unfitted(self) -> Preprocessor:
        """A new preprocessor with the same options and no statistics (refit per fold)."""
        return type(self)(**self._options())

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: options and fitted statistics."""
        return {
            "kind": self.kind,
            "options": self._options(),
            "fitted": self.fitted,
            "stats": self._stats() if self.fitted else None,
            "target": {"mean": self.target_mean, "std": self.target_std},
        }

    @staticmethod
    def from_state_dict(state: dict[str, Any], base_dir: str | os.PathLike[str] | None = None) -> Preprocessor:
        """Rebuild a preprocessor from :meth:`state_dict`. ``base_dir``: the folder a relative
        tokenizer path of a text preprocessor is resolved against (other kinds ignore it)."""
        kind = state.get("kind") if isinstance(state, dict) else None
        if kind not in PREPROCESSOR_KINDS:
            raise ConfigError(f"invalid preprocessor state kind: got {kind!r}; allowed: "
                              f"{', '.join(map(repr, PREPROCESSOR_KINDS))}")
        cls = PREPROCESSOR_KINDS[kind]
        try:
            options = cls._options_from_state(dict(state["options"]), state, base_dir)
            pre = cls(**options)
            if state.get("fitted"):
                pre._load_stats(state["stats"])
                target = state.get("target") or {}
                pre.target_mean = _finite_list(target.get("mean"), "target.mean")
                pre.target_std = _finite_list(target.get("std"), "target.std", positive=True)
                pre.fitted = True
                for name in ("fill", "center", "std"):
                    if hasattr(pre, name):
                        _finite_list(getattr(pre, name), f"stats.{name}", positive=name == "std")
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"invalid preprocessor state: {type(err).__name__}: {str(err)[:160]}; allowed: "
                              "what Preprocessor.state_dict() writes") from None
        return pre


def _finite_list(values: Any, name: str, *, positive: bool = False) -> list[float] | None:
    """``values`` as floats, each finite (and > 0 with ``positive``); None stays None."""
    if values is None:
        return None
    out = [float(v) for v in values]
    bad = [v for v in out if not math.isfinite(v) or (positive and v <= 0)]
    if bad:
        allowed = "finite numbers > 0 (a standard deviation of 0 would divide by zero)" if positive else "finite numbers"
        raise ConfigError(f"invalid preprocessor state: {name} holds {bad[0]!r}; allowed: {allowed}")
    return out


class TabularPreprocessor(Preprocessor):
    """Rows of named columns -> float32 ``(N, D)``.

    Numeric columns: missing values imputed (``impute``: "mean"/"median"/"most_frequent"; None
    means mean), then scaled. Categorical columns: missing values imputed with the most frequent
    category, then one-hot encoded (an unknown category gives all zeros) or index encoded
    (1..K in sorted order, 0 for an unknown category; not scaled).
    """

    kind = "tabular"

    def __init__(
        self,
        columns: Sequence[str],
        kinds: Sequence[str],
        *,
        scale: str | None = "standard",
        categorical: str = "onehot",
        impute: str | None = None,
        scale_target: bool = False,
    ) -> None:
        super().__init__(scale_target=scale_target)
        self.columns = [str(c) for c in columns]
        self.kinds = [check_choice("column kind", k, ("numeric", "categorical")) for k in kinds]
        if len(self.columns) != len(self.kinds):
            raise ConfigError(f"got {len(self.columns)} column names but {len(self.kinds)} column kinds")
        self.scale = check_choice("scale", scale, SCALES)
        self.categorical = check_choice("categorical", categorical, ENCODINGS)
        self.impute = check_choice("impute", impute, IMPUTES)
        self._numeric = [j for j, k in enumerate(self.kinds) if k == "numeric"]
        self.fill: list[float] = []
        self.center: list[float] = []
        self.std: list[float] = []
        self.categories: dict[str, list[str]] = {}
        self.category_fill: dict[str, str | None] = {}

    def _options(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "kinds": list(self.kinds), "scale": self.scale,
                "categorical": self.categorical, "impute": self.impute, "scale_target": self.scale_target}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.feature_names),)

    @property
    def feature_names(self) -> list[str]:
        """Names of the output columns (``color=red`` for one-hot columns)."""
        names: list[str] = []
        for name, kind in zip(self.columns, self.kinds):
            if kind == "categorical" and self.categorical == "onehot":
                names += [f"{name}={c}" for c in self.categories.get(name, [])]
            else:
                names.append(name)
        return names

    def _check(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 1 and x.shape[0] == len(self.columns) and len(self.columns) > 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise DataError(
                f"expected rows of {len(self.columns)} columns ({', '.join(self.columns)}); got an array of shape {x.shape}"
            )
        return x

    def _numeric_block(self, x: np.ndarray) -> np.ndarray:
        """(N, n_numeric) float64 with NaN where missing."""
        if x.dtype.kind in "biuf":
            return x[:, self._numeric].astype(np.float64)
        out = np.empty((x.shape[0], len(self._numeric)), dtype=np.float64)
        for k, j in enumerate(self._numeric):
            name = self.columns[j]
            out[:, k] = [_to_float(v, name) for v in x[:, j]]
        return out

    def _fit_x(self, x: np.ndarray) -> None:
        x = self._check(x)
        if x.shape[0] == 0:
            raise DataError("cannot fit a preprocessor on zero rows")
        block = self._numeric_block(x)
        self.fill, self.center, self.std = [], [], []
        for k in range(block.shape[1]):
            col = block[:, k]
            present = col[~np.isnan(col)]
            if present.size == 0:
                fill = 0.0
            elif self.impute == "median":
                fill = float(np.median(present))
            elif self.impute == "most_frequent":
                values, counts = np.unique(present, return_counts=True)
                fill = float(values[np.argmax(counts)])  # ties -> smallest value
            else:
                fill = float(present.mean())
            col = np.where(np.isnan(col), fill, col)
            center, std = 0.0, 1.0
            if self.scale == "standard":
                center, std = float(col.mean()), float(col.std())
            elif self.scale == "minmax":
                center, std = float(col.min()), float(col.max() - col.min())
            self.fill.append(fill)
            self.center.append(center)
            self.std.append(std if std > 0 and np.isfinite(std) else 1.0)
        self.categories, self.category_fill = {}, {}
        for j, kind in enumerate(self.kinds):
            if kind != "categorical":
                continue
            counts = Counter(c for c in map(to_category, x[:, j]) if c is not None)
            name = self.columns[j]
            self.categories[name] = sorted(counts)
            self.category_fill[name] = min(counts, key=lambda c: (-counts[c], c)) if counts else None

    def _transform_x(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        n = x.shape[0]
        block = self._numeric_block(x)
        if block.size:
            fill = np.asarray(self.fill)
            block = np.where(np.isnan(block), fill, block)
            block = (block - np.asarray(self.center)) / np.asarray(self.std)
        out = np.zeros((n, self.input_shape[0]), dtype=np.float32)
        for j, name, pos, _, k in self._layout():
            if k is not None:
                out[:, pos] = block[:, k]
                continue
            vocab = self.categories[name]
            index = {c: i for i, c in enumerate(vocab)}
            fill = self.category_fill[name]
            codes = np.fromiter(
                (index.get(fill if c is None else c, -1) for c in map(to_category, x[:, j])), dtype=np.int64, count=n
            )
            if self.categorical == "index":
                out[:, pos] = codes + 1  # 0 = unknown
            else:
                known = codes >= 0
                out[np.nonzero(known)[0], pos + codes[known]] = 1.0  # unknown -> all zeros
        return out

    def _layout(self) -> Iterator[tuple[int, str, int, int, int | None]]:
        """Per raw column: its index, name, first output column, number of output columns, and its
        index among the numeric columns (None for a categorical one: its one-hot block or index)."""
        pos, k = 0, 0
        for j, (name, kind) in enumerate(zip(self.columns, self.kinds)):
            if kind == "numeric":
                yield j, name, pos, 1, k
                pos, k = pos + 1, k + 1
            else:
                width = len(self.categories[name]) if self.categorical == "onehot" else 1
                yield j, name, pos, width, None
                pos += width

    def imputed_cells(self, raw_x: Any) -> np.ndarray:
        """A missing numeric value's cell, and every cell of a missing category (its one-hot
        block, or its index)."""
        x = self._check(_numpy(raw_x))
        block = np.isnan(self._numeric_block(x))  # (N, n_numeric)
        out = np.zeros((x.shape[0], self.input_shape[0]), dtype=bool)
        for j, _, pos, width, k in self._layout():
            if k is not None:
                out[:, pos] = block[:, k]
                continue
            out[:, pos:pos + width] = np.fromiter((to_category(v) is None for v in x[:, j]), dtype=bool,
                                                  count=x.shape[0])[:, None]
        return out

    def _stats(self) -> dict[str, Any]:
        return {"fill": self.fill, "center": self.center, "std": self.std,
                "categories": self.categories, "category_fill": self.category_fill}

    def _load_stats(self, stats: dict[str, Any]) -> None:
        self.fill = [float(v) for v in stats["fill"]]
        self.center = [float(v) for v in stats["center"]]
        self.std = [float(v) for v in stats["std"]]
        self.categories = {k: list(v) for k, v in stats["categories"].items()}
        self.category_fill = dict(stats["category_fill"])
