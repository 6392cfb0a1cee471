"""``classes`` (keep some classes, relabelled) and ``train_fraction`` (keep a share of the training rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from honing._core import ConfigError
from honing.data import FASHION_MNIST_CLASSES, load


def _ids(split: Any) -> set[int]:
    return set(split.x[:, 0].long().tolist())


# ---------------------------------------------------------------------------------- classes

def test_classes_of_fashion_mnist_by_label_and_by_name(tmp_path: Path, files: Any) -> None:
    folder = files.make_idx_set(tmp_path / "fm", n_train=200, n_test=100, classes=10)
    ds = load("fashion-mnist", folder=str(folder), classes=[5, 6, 7, 8, 9], scale=None, val_size=0.2)
    assert ds.class_names == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert ds.num_outputs == 5 and ds.info["classes"] == [5, 6, 7, 8, 9]
    assert len(ds.test) == 50  # the fixed test set is filtered too: 10 rows of each kept class
    assert torch.bincount(ds.test.y).tolist() == [10] * 5
    assert len(ds.train) + len(ds.val) == 100 and ds.train.y.max() == 4
    by_name = load("fashion-mnist", folder=str(folder), classes=["Sandal", "Shirt", 7, "Bag", 9], scale=None,
                   val_size=0.2)
    assert by_name.class_names == ds.class_names
    torch.testing.assert_close(by_name.test.x, ds.test.x)
    torch.testing.assert_close(by_name.train.y, ds.train.y)


def test_classes_are_relabelled_in_the_order_given(tmp_path: Path, files: Any) -> None:
    y = np.repeat([10, 20, 30], 20)  # labels that are not 0..K-1: classes are named '10', '20', '30'
    x = np.column_stack([np.arange(60), np.ones(60)])
    src = files.write_npz(tmp_path / "l.npz", x=x, y=y)
    ds = load(src, classes=[30, "10"], scale=None, test_size=0.2, val_size=0.2)
    assert ds.class_names == ["30", "10"] and ds.num_outputs == 2
    for split in (ds.train, ds.val, ds.test):
        original = y[split.x[:, 0].long().numpy()]
        assert (np.array([30, 10])[split.y.numpy()] == original).all()
    assert sum(len(s) for s in (ds.train, ds.val, ds.test)) == 40


def test_classes_by_string_label(tmp_path: Path, files: Any) -> None:
    y = np.array(["cat", "dog", "emu"] * 10)
    src = files.write_npz(tmp_path / "s.npz", x=np.arange(30.0)[:, None], y=y)
    ds = load(src, classes=["emu", "cat"], scale=None, val_size=0.2, test_size=0.2)
    assert ds.class_names == ["emu", "cat"]
    labels = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    rows = torch.cat([ds.train.x[:, 0], ds.val.x[:, 0], ds.test.x[:, 0]]).long()
    assert all(y[r] == ds.class_names[int(c)] for r, c in zip(rows, labels))
    assert len(labels) == 20


def test_classes_with_limit_caps_the_kept_rows(imbalanced: str) -> None:
    ds = load(imbalanced, classes=[2, 1], limit=50, seed=1)
    labels = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    assert len(labels) == 50 and torch.bincount(labels).tolist() == [15, 35]  # 30:70, relabelled 2 -> 0
    assert ds.info["rows_of_classes"] == 100


def test_unknown_or_repeated_class_lists_the_classes() -> None:
    listed = r"0 \('setosa'\), 1 \('versicolor'\), 2 \('virginica'\)"
    with pytest.raises(ConfigError, match=r"unknown class 'rose'.*" + listed):
        load("sklearn:iris", classes=["rose"])
    with pytest.raises(ConfigError, match="unknown class 3"):
        load("sklearn:iris", classes=[0, 3])
    with pytest.raises(ConfigError, match="again"):
        load("sklearn:iris", classes=[0, "setosa"])


def test_classes_with_fashion_mnist_names_unknown(tmp_path: Path, files: Any) -> None:
    folder = files.make_idx_set(tmp_path / "fm", n_train=40, n_test=20, classes=10)
    with pytest.raises(ConfigError, match="'Bag'") as info:
        load("fashion-mnist", folder=str(folder), classes=["Boot"])
    assert all(name in str(info.value) for name in FASHION_MNIST_CLASSES)


def test_classes_apply_to_classification_only() -> None:
    with pytest.raises(ConfigError, match="classification only"):
        load("sklearn:diabetes", classes=[1, 2])


@pytest.mark.parametrize("bad", [[], [True], [1.5], [0, 0], "setosa", [""]])
def test_bad_classes(bad: Any) -> None:
    with pytest.raises(ConfigError, match="invalid classes"):
        load("sklearn:iris", classes=bad)


# --------------------------------------------------------------------------- train_fraction

def test_train_fraction_keeps_a_stratified_share(imbalanced: str) -> None:
    full = load(imbalanced, val_size=0.2, test_size=0.2, seed=3)
    ds = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.1)
    assert torch.bincount(full.train.y).tolist() == [120, 42, 18]
    assert torch.bincount(ds.train.y).tolist() == [12, 4, 2]  # 18 rows: 12, 4.2, 1.8 by largest remainder
    assert ds.info["train_fraction"] == {"fraction": 0.1, "rows_before": 180, "rows_after": 18}
    assert ds.info["train"] == 18
    # validation and test rows are the same rows, the kept training rows are some of the training rows
    raw = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.1, scale=None)
    raw_full = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, scale=None)
    assert _ids(raw.val) == _ids(raw_full.val) and _ids(raw.test) == _ids(raw_full.test)
    assert _ids(raw.train) < _ids(raw_full.train)
    # preprocessing is fitted on the kept rows: they are the ones standardized to mean 0
    assert abs(float(ds.train.x[:, 1].mean())) < 1e-5
    assert abs(float(full.train.x[:, 1].mean())) < 1e-5


def test_train_fraction_is_seeded(imbalanced: str) -> None:
    a = load(imbalanced, train_fraction=0.3, seed=2, scale=None)
    b = load(imbalanced, train_fraction=0.3, seed=2, scale=None)
    c = load(imbalanced, train_fraction=0.3, seed=4, scale=None)
    torch.testing.assert_close(a.train.x, b.train.x)
    assert _ids(a.train) != _ids(c.train)


def test_train_fraction_keeps_every_class_when_it_can(imbalanced: str) -> None:
    ds = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.02)  # 3.6 -> 4 rows
    assert torch.bincount(ds.train.y, minlength=3).tolist() == [2, 1, 1]
    two = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.01)  # 2 rows, 3 classes
    assert torch.bincount(two.train.y, minlength=3).tolist() == [1, 1, 0]
    one = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.001)  # at least one row
    assert len(one.train) == 1


def test_train_fraction_of_one_changes_nothing(imbalanced: str) -> None:
    a, b = load(imbalanced, seed=1), load(imbalanced, seed=1, train_fraction=1.0)
    torch.testing.assert_close(a.train.x, b.train.x)
    assert b.info["train_fraction"]["rows_after"] == b.info["train_fraction"]["rows_before"]


def test_train_fraction_folds_use_kept_rows_plus_validation(imbalanced: str) -> None:
    ds = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, train_fraction=0.25, scale=None)
    pool_x, pool_y = ds.raw_train_val
    assert len(pool_y) == 45 + 60
    assert set(pool_x[:, 0].astype(int).tolist()) == _ids(ds.train) | _ids(ds.val)
    folds = ds.folds(3, seed=0)
    assert sorted(len(v) for _, v in folds) == [35, 35, 35]


def test_train_fraction_regression_and_with_limit() -> None:
    full = load("sklearn:diabetes")
    ds = load("sklearn:diabetes", train_fraction=0.5)
    assert len(ds.train) == round(0.5 * len(full.train)) and len(ds.val) == len(full.val)
    small = load("sklearn:digits", limit=300, train_fraction=0.2, val_size=0.2, test_size=0.2)
    assert (len(small.train), len(small.val), len(small.test)) == (36, 60, 60)
    assert torch.bincount(small.train.y, minlength=10).min() >= 3


def test_classes_and_train_fraction_on_a_fixed_test_set(tmp_path: Path, files: Any) -> None:
    folder = files.make_idx_set(tmp_path / "fm", n_train=200, n_test=100, classes=10)
    ds = load("fashion-mnist", folder=str(folder), classes=[0, 9], train_fraction=0.5, val_size=0.25)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 10, 20)
    assert torch.bincount(ds.train.y).tolist() == [8, 7] or torch.bincount(ds.train.y).tolist() == [7, 8]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, "half", True])
def test_bad_train_fraction(bad: Any) -> None:
    with pytest.raises(ConfigError, match="invalid train_fraction"):
        load("sklearn:iris", train_fraction=bad)
