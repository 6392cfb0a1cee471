"""Splitting: seeded, stratified, duplicates removed first, row caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import DataError
from honing.data import load


def _npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_split_is_stratified(imbalanced: str) -> None:
    ds = load(imbalanced, val_size=0.2, test_size=0.2, seed=3)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 60, 60)
    for split in (ds.val, ds.test):
        counts = torch.bincount(split.y, minlength=3).tolist()
        assert all(abs(c - e) <= 1 for c, e in zip(counts, [40, 14, 6]))
    plain = load(imbalanced, val_size=0.2, test_size=0.2, seed=3, stratify=False)
    assert plain.info["stratified"] is False and ds.info["stratified"] is True


def test_split_is_seeded(imbalanced: str) -> None:
    a, b = load(imbalanced, seed=5, scale=None), load(imbalanced, seed=5, scale=None)
    c = load(imbalanced, seed=6, scale=None)
    for name in ("train", "val", "test"):
        torch.testing.assert_close(getattr(a, name).x, getattr(b, name).x)
        torch.testing.assert_close(getattr(a, name).y, getattr(b, name).y)
    assert set(a.test.x[:, 0].tolist()) != set(c.test.x[:, 0].tolist())
    # the three parts partition the rows
    ids = torch.cat([a.train.x[:, 0], a.val.x[:, 0], a.test.x[:, 0]]).long().sort().values
    assert ids.tolist() == list(range(300))


def test_duplicates_removed_before_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    y = np.arange(100) % 2
    x_dup = np.concatenate([x, x[:20], x[20:25]])  # 20 exact copies, 5 copies with other labels
    y_dup = np.concatenate([y, y[:20], 1 - y[20:25]])
    src = _npz(tmp_path / "d.npz", x=x_dup, y=y_dup)
    ds = load(src, scale=None)
    assert ds.info["duplicates_removed"] == 20
    rows = torch.cat([torch.cat([s.x, s.y[:, None].double()], 1) for s in (ds.train, ds.val, ds.test)])
    assert len(rows) == 105 and len(torch.unique(rows, dim=0)) == 105  # no repeated (x, y)
    kept = load(src, scale=None, drop_duplicates=False)
    assert len(kept.train) + len(kept.val) + len(kept.test) == 125


def test_training_rows_repeating_the_test_set_are_dropped(tmp_path: Path) -> None:
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    xt = x[:5].copy()
    src = _npz(tmp_path / "t.npz", x=x, y=np.arange(20) % 2, x_test=xt, y_test=np.arange(5) % 2)
    ds = load(src, val_size=0.2, scale=None)
    assert ds.info["duplicates_removed"] == 5 and len(ds.test) == 5
    assert len(ds.train) + len(ds.val) == 15


def test_limit_caps_rows_seeded(imbalanced: str) -> None:
    a = load(imbalanced, limit=100, seed=1, scale=None)
    b = load(imbalanced, limit=100, seed=1, scale=None)
    assert len(a.train) + len(a.val) + len(a.test) == 100
    torch.testing.assert_close(a.train.x, b.train.x)
    y = torch.cat([a.train.y, a.val.y, a.test.y])
    assert torch.bincount(y).tolist() == [67, 23, 10]  # stratified subsample
    assert load(imbalanced, limit=1000).info["train"] == 210  # a cap above the size is a no-op


def test_zero_sizes_give_no_split(imbalanced: str) -> None:
    ds = load(imbalanced, val_size=0.0, test_size=0.0)
    assert ds.val is None and ds.test is None and len(ds.train) == 300


def test_rare_class_falls_back_to_random_split(tmp_path: Path) -> None:
    y = np.array([0] * 30 + [1] * 29 + [2])
    src = _npz(tmp_path / "r.npz", x=np.arange(60, dtype=float)[:, None], y=y)
    ds = load(src)
    assert ds.info["stratified"] is False and ds.num_outputs == 3


def test_too_few_rows(tmp_path: Path) -> None:
    src = _npz(tmp_path / "few.npz", x=np.zeros((2, 1)) + [[0.0], [1.0]], y=np.array([0.5, 1.5]))
    with pytest.raises(DataError, match="too few rows"):
        load(src, val_size=0.5, test_size=0.45)


def test_a_given_preprocessor_is_used_as_it_is_and_never_refit(tmp_path) -> None:
    import json

    from honing._core import ConfigError

    first = load("sklearn:iris", seed=0)
    second = load("sklearn:iris", seed=5, preprocessor=first.preprocessor)
    assert second.info["preprocessor"] == "given"
    assert second.preprocessor.state_dict() == first.preprocessor.state_dict()
    assert load("sklearn:iris", seed=5).preprocessor.state_dict() != first.preprocessor.state_dict()
    # folds keep it: every pool row is a validation row once, scaled by the given statistics
    folds = second.folds(3)
    total = sum(val.x.sum(0) for _, val in folds)
    assert torch.allclose(total, first.preprocessor.transform(second._pool_x).sum(0), atol=1e-4)
    (tmp_path / "preprocessor.json").write_text(json.dumps(first.preprocessor.state_dict()))
    from_folder = load("sklearn:iris", seed=5, preprocessor=tmp_path)
    assert from_folder.preprocessor.state_dict() == first.preprocessor.state_dict()
    with pytest.raises(ConfigError, match="not fitted"):
        load("sklearn:iris", preprocessor=first.preprocessor.unfitted())
    with pytest.raises(DataError, match="preprocessor.json"):
        load("sklearn:iris", preprocessor=tmp_path / "nowhere")
