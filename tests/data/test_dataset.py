"""Dataset: k-fold with per-fold refit, class weights, Split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError
from honing.data import Split, load


@pytest.fixture
def fold_csv(tmp_path: Path, files) -> str:
    """Row id, a value that is huge on every 6th row, a category unique to every 6th row."""
    rows = []
    for i in range(120):
        rare = i % 6 == 0
        rows.append([i, 1e6 if rare else (i % 7) * 0.5, f"r{i}" if rare else "ab"[i % 2], "xyz"[i % 3]])
    return f"csv:{files.write_csv(tmp_path / 'f.csv', ['id', 'v', 'c', 'label'], rows)}"


def test_folds_partition_the_train_val_rows(fold_csv: str) -> None:
    ds = load(fold_csv, scale=None, seed=0)
    pool_ids = sorted(torch.cat([ds.train.x[:, 0], ds.val.x[:, 0]]).long().tolist())
    folds = ds.folds(4, seed=0)
    assert len(folds) == 4
    seen: list[int] = []
    for train, val in folds:
        tr, va = set(train.x[:, 0].long().tolist()), set(val.x[:, 0].long().tolist())
        assert not tr & va and sorted(tr | va) == pool_ids
        seen += sorted(va)
        # stratified: each class has the same share in every fold's val part (within one row)
        counts = torch.bincount(val.y, minlength=3)
        assert int(counts.max() - counts.min()) <= 1
    assert sorted(seen) == pool_ids  # every row is validated exactly once
    again = ds.folds(4, seed=0)
    torch.testing.assert_close(again[2][1].x, folds[2][1].x)
    other = ds.folds(4, seed=1)
    assert set(other[0][1].x[:, 0].tolist()) != set(folds[0][1].x[:, 0].tolist())


def test_folds_refit_on_each_fold_train_part(fold_csv: str) -> None:
    ds = load(fold_csv, seed=0)  # standard scaling, one-hot categories
    ds_ids = load(fold_csv, seed=0, scale=None)
    for (train, val), (train_raw, val_raw) in zip(ds.folds(3), ds_ids.folds(3)):
        # scaling statistics from the fold's train rows: those columns are standardized there
        torch.testing.assert_close(train.x[:, :2].mean(0), torch.zeros(2), atol=1e-4, rtol=0)
        torch.testing.assert_close(train.x[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
        # ... and the fold's val rows are transformed with exactly those statistics
        v = train_raw.x[:, 1].double()
        expected = (val_raw.x[:, 1].double() - v.mean()) / v.std(unbiased=False)
        torch.testing.assert_close(val.x[:, 1].double(), expected, atol=1e-4, rtol=1e-5)
        # vocabulary from the fold's train rows: 'a', 'b' plus the rare ids present there
        rare_in_train = sum(1 for i in train_raw.x[:, 0].long().tolist() if i % 6 == 0)
        assert rare_in_train > 0
        assert train.x.shape[1] == val.x.shape[1] == 2 + 2 + rare_in_train


def test_folds_validate_k_and_handle_regression() -> None:
    ds = load("sklearn:diabetes", val_size=0.1, test_size=0.1)
    folds = ds.folds(3, seed=0)
    assert folds[0][0].y.dtype == torch.float32 and folds[0][0].y.shape[1] == 1
    with pytest.raises(ConfigError, match="k"):
        ds.folds(1)


def test_class_weights_balanced() -> None:
    ds = load("sklearn:wine")
    counts = torch.bincount(ds.train.y, minlength=3).double()
    expected = len(ds.train) / (3 * counts)
    torch.testing.assert_close(ds.class_weights(), expected.float())
    assert ds.class_weights().dtype == torch.float32
    with pytest.raises(ConfigError, match="classification"):
        load("sklearn:diabetes").class_weights()


def test_split_is_frozen_and_checked() -> None:
    s = Split(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))
    assert len(s) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.x = torch.ones(4, 2)  # type: ignore[misc]
    with pytest.raises(ConfigError, match="length"):
        Split(torch.zeros(4, 2), torch.zeros(3))


def test_raw_train_val_rows_kept() -> None:
    ds = load("sklearn:iris", seed=0)
    raw_x, raw_y = ds.raw_train_val
    assert raw_x.shape == (len(ds.train) + len(ds.val), 4) and raw_y.dtype == np.int64
    torch.testing.assert_close(ds.preprocessor.transform(raw_x[len(ds.train):]), ds.val.x)
