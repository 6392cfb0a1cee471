"""Split and Dataset: prepared tensors plus what is needed to refit (k-fold) and to reuse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from honing._core import ConfigError, check_int
from honing.data._preprocess import Preprocessor


@dataclass(frozen=True, eq=False)
class Split:
    """One part of a data set: ``x`` float32 ``(N, *input_shape)`` (int64 token ids ``(N, L)`` for
    text, ``L`` <= ``max_length``); ``y`` int64 ``(N,)`` (classification) or float32
    ``(N, num_outputs)`` (regression)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ConfigError(f"Split x and y differ in length: {len(self.x)} != {len(self.y)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return f"Split(x={tuple(self.x.shape)} {self.x.dtype}, y={tuple(self.y.shape)} {self.y.dtype})"


def make_split(pre: Preprocessor, raw_x: np.ndarray, y: np.ndarray, task: str) -> Split:
    """Transform raw rows with a fitted preprocessor; labels as int64, targets via the preprocessor."""
    ty = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)) if task == "classification" else pre.transform_target(y)
    return Split(pre.transform(raw_x), ty)


class Dataset:
    """A prepared data set (see :func:`honing.data.load`).

    Attributes: ``train``, ``val``, ``test`` (Split or None), ``task``, ``input_shape``,
    ``num_outputs``, ``class_names``, ``preprocessor`` (fitted on ``train`` only), ``source``,
    ``seed``, ``info`` (row counts, duplicates removed, ...), ``groups`` (``load(groups=...)``:
    split -> column -> each row's group label; None without).
    """

    def __init__(
        self,
        *,
        train: Split,
        val: Split | None,
        test: Split | None,
        task: str,
        num_outputs: int,
        class_names: list[str] | None,
        preprocessor: Preprocessor,
        pool_x: np.ndarray,
        pool_y: np.ndarray,
        source: str,
        seed: int,
        info: dict[str, Any],
        groups: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> None:
        self.train, self.val, self.test = train, val, test
        self.task = task
        self.num_outputs = num_outputs
        self.class_names = class_names
        self.preprocessor = preprocessor
        self.source = source
        self.seed = seed
        self.info = info
        self.groups = groups  # split -> group column -> each row's group label (the fairness audit)
        self._pool_x = pool_x  # raw train+val rows (train first), for k-fold refits
        self._pool_y = pool_y  # int64 labels or float64 (N, k) unscaled targets

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.preprocessor.kind == "text":  # splits are padded to their longest row only
            return self.preprocessor.input_shape
        return tuple(self.train.x.shape[1:])

    @property
    def raw_train_val(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw train+val rows (train rows first) and their encoded targets."""
        return self._pool_x, self._pool_y

    def summary(self) -> dict[str, Any]:
        """What the preparation did, for the console, results.json and the report: the source,
        the target column(s) and how they were chosen, rows read / dropped / per split, columns by
        kind, values imputed, and rows per class in each split (classification)."""
        info = self.info
        kind = getattr(self.preprocessor, "kind", "")
        own = "labels" if self.task == "classification" else "target values"
        target = info.get("target") or [f"(the source's {own})"]
        out: dict[str, Any] = {
            "source": self.source, "task": self.task, "target": list(target),
            "target_from": info.get("target_from", "fixed by the source"),
            "rows_read": info.get("rows_read"),
            "rows": {s: len(getattr(self, s)) for s in ("train", "val", "test") if getattr(self, s) is not None},
            "test_rows_from": (f"the test file {info['test_file']}" if info.get("test_file") else
                               "the source's fixed test set" if info.get("fixed_test_set") else
                               "held out of the rows read"),
            "dropped": {k: int(v) for k, v in (("duplicates", info.get("duplicates_removed")),
                                              ("missing_target", info.get("dropped_missing_target")),
                                              ("empty_text", info.get("dropped_empty_text")),
                                              ("other_classes", info.get("dropped_other_rows"))) if v},
            "stratified": bool(info.get("stratified")),
        }
        if info.get("label_issues"):
            out["label_issues"] = info["label_issues"]  # data.check_labels: the suspect labels found (dropped?)
        if info.get("groups"):
            out["groups"] = info["groups"]  # the audited columns, and whether the model sees them
        if info.get("scale_target"):
            out["scale_target"] = info["scale_target"]  # regression: trained on standardized targets or not
        if kind == "tabular":
            kinds = list(self.preprocessor.kinds)
            out["columns"] = {"numeric": kinds.count("numeric"), "categorical": kinds.count("categorical")}
            missing = info.get("missing_values") or {}
            out["imputed"] = {"values": int(sum(missing.values())), "columns": missing,
                              "numeric_with": self.preprocessor.impute or "mean",
                              "categorical_with": "most frequent category"}
        if "class_counts" in info and self.class_names:
            out["classes"] = {name: {split: counts[i] for split, counts in info["class_counts"].items()}
                              for i, name in enumerate(self.class_names)}
        return out

    def class_weights(self) -> torch.Tensor:
        """Balanced class weights from the training labels: ``n / (K * count_k)`` (0 for absent classes)."""
        if self.task != "classification":
            raise ConfigError(f"class_weights() needs a classification data set; this one is {self.task}")
        counts = torch.bincount(self.train.y, minlength=self.num_outputs).double()
        weights = torch.where(counts > 0, len(self.train) / (self.num_outputs * counts.clamp(min=1)), 0.0)
        return weights.float()

    def folds(self, k: int = 5, *, seed: int = 0, stratify: bool = True) -> list[tuple[Split, Split]]:
        """k (train, val) pairs over the train+val rows; the preprocessor is refit on each fold's train part.

        Stratified for classification when every class has at least ``k`` rows (else plain k-fold).
        ``fold_indices`` gives the same folds as row indices into ``raw_train_val``.
        """
        out = []
        for tr, va in self.fold_indices(k, seed=seed, stratify=stratify):
            pre = self.fold_preprocessor(tr)
            out.append((
                make_split(pre, self._pool_x[tr], self._pool_y[tr], self.task),
                make_split(pre, self._pool_x[va], self._pool_y[va], self.task),
            ))
        return out

    def fold_indices(self, k: int = 5, *, seed: int = 0, stratify: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (train, val) row indices of ``folds(k, seed=seed)`` into the train+val rows (train first)."""
        from sklearn.model_selection import KFold, StratifiedKFold

        n = len(self._pool_y)
        k = check_int("k", k, low=2, high=max(2, n))
        seed = check_int("seed", seed, low=0)
        splitter: Any = KFold(n_splits=k, shuffle=True, random_state=seed)
        if stratify and self.task == "classification":
            counts = np.bincount(self._pool_y)
            if counts[counts > 0].min() >= k:
                splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return [(tr, va) for tr, va in splitter.split(np.zeros(n), self._pool_y)]

    def fold_preprocessor(self, rows: np.ndarray) -> Preprocessor:
        """The preprocessor a fold trains with: refit on ``rows`` of the train+val rows (the same
        one when it is frozen: images, token ids)."""
        if getattr(self.preprocessor, "frozen", False):
            return self.preprocessor
        return self.preprocessor.unfitted().fit(self._pool_x[rows], self._pool_y[rows])

    def __repr__(self) -> str:
        parts = [f"train={len(self.train)}", f"val={len(self.val) if self.val else 0}",
                 f"test={len(self.test) if self.test else 0}"]
        return (f"Dataset({self.source!r}, {self.task}, input_shape={self.input_shape}, "
                f"num_outputs={self.num_outputs}, {', '.join(parts)})")
