"""Preprocessing is fitted on training rows only, and is reusable and serialisable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError
from honing.data import ArrayPreprocessor, Preprocessor, TabularPreprocessor, load


def leaky_csv(tmp_path: Path, files, n: int = 200) -> Path:
    """Every 5th row is extreme: a huge value, a missing-or-huge cell, and a category of its own."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        odd = i % 5 == 0
        v = 1e6 + i if odd else rng.normal()
        m = "" if i % 4 == 1 else (5e5 if odd else rng.normal(3.0))
        c = f"rare{i}" if odd else "ab"[i % 2]
        rows.append([i, v, m, c, i % 2])
    return files.write_csv(tmp_path / "leak.csv", ["id", "v", "m", "c", "y"], rows)


def _train_raw(ds) -> np.ndarray:
    return ds.raw_train_val[0][: len(ds.train)]


def test_scaling_imputation_and_vocabulary_use_train_rows_only(tmp_path: Path, files) -> None:
    ds = load(f"csv:{leaky_csv(tmp_path, files)}", seed=0)
    pre, train = ds.preprocessor, _train_raw(ds)
    assert len(train) == len(ds.train)
    ids = set(train[:, 0].astype(float).astype(int))
    held_out_odd = [i for i in range(0, 200, 5) if i not in ids]
    assert len(held_out_odd) >= 5  # some extreme rows are in val/test, so a leak would show
    # imputation: mean of the present training cells of m
    m = np.array([np.nan if v is None else float(v) for v in train[:, 2]], dtype=float)
    fill = np.nanmean(m)
    assert pre.fill[2] == pytest.approx(fill)
    # scaling: mean/std of the training column after imputation
    v = train[:, 1].astype(float)
    assert pre.center[1] == pytest.approx(v.mean()) and pre.std[1] == pytest.approx(v.std())
    m_imp = np.where(np.isnan(m), fill, m)
    assert pre.center[2] == pytest.approx(m_imp.mean()) and pre.std[2] == pytest.approx(m_imp.std())
    # vocabulary: categories of the training rows only
    assert pre.categories["c"] == sorted(set(train[:, 3]))
    assert not any(f"rare{i}" in pre.categories["c"] for i in held_out_odd)
    # transformed training columns are standardized; held-out extreme rows stay far out
    torch.testing.assert_close(ds.train.x[:, :3].mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    # rare categories of held-out rows are unknown: all zeros in the one-hot block
    held = torch.cat([ds.val.x, ds.test.x])
    rare_rows = held[:, 1] > 1.0  # the huge v rows
    assert rare_rows.any() and (held[rare_rows, 3:].sum(1) == 0).all()


def test_fixed_test_set_never_fitted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2, 3, 3)).astype(np.float32)
    x[:, 1] += 5.0
    xt = np.full((20, 2, 3, 3), 1000.0, dtype=np.float32)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(80) % 2, x_test=xt, y_test=np.arange(20) % 2)
    ds = load(f"npz:{tmp_path / 'a.npz'}", val_size=0.25)
    train = _train_raw(ds).astype(np.float64)
    stats = ds.preprocessor.state_dict()["stats"]
    np.testing.assert_allclose(stats["center"], train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], train.std(axis=(0, 2, 3)), rtol=1e-5)
    assert float(ds.test.x.min()) > 100  # test rows transformed with the train statistics


@pytest.mark.parametrize("source", ["sklearn:wine", "sklearn:digits"])
@pytest.mark.parametrize("scale", ["standard", "minmax", None])
def test_state_dict_round_trip(source: str, scale: str | None) -> None:
    ds = load(source, scale=scale, image=True if source.endswith("digits") else None)
    state = json.loads(json.dumps(ds.preprocessor.state_dict()))  # JSON-able
    again = Preprocessor.from_state_dict(state)
    assert type(again) is type(ds.preprocessor) and again.input_shape == ds.input_shape
    raw = ds.raw_train_val[0][:7]
    torch.testing.assert_close(again.transform(raw), ds.train.x[:7])
    if scale == "minmax":
        assert float(ds.train.x.min()) == pytest.approx(0.0, abs=1e-6)
        assert float(ds.train.x.max()) == pytest.approx(1.0, abs=1e-6)


def test_tabular_round_trip_with_categories(tmp_path: Path, files) -> None:
    ds = load(f"csv:{leaky_csv(tmp_path, files)}", categorical="index", impute="median", scale_target=False)
    again = Preprocessor.from_state_dict(json.loads(json.dumps(ds.preprocessor.state_dict())))
    rows = [[1, 0.5, None, "a"], [2, "1e6", "3", "zzz"]]
    torch.testing.assert_close(again.transform(rows), ds.preprocessor.transform(rows))
    assert again.transform(rows)[1, 3] == 0  # unknown category -> index 0


def test_impute_choices() -> None:
    x = np.array([[1.0], [2.0], [2.0], [10.0], [np.nan]])
    for impute, fill in [("mean", 3.75), (None, 3.75), ("median", 2.0), ("most_frequent", 2.0)]:
        pre = TabularPreprocessor(["a"], ["numeric"], scale=None, impute=impute).fit(x)
        assert float(pre.transform(x)[4, 0]) == pytest.approx(fill)
    cat = np.array([["b"], ["a"], ["b"], [None]], dtype=object)
    pre = TabularPreprocessor(["c"], ["categorical"]).fit(cat)
    assert pre.category_fill["c"] == "b" and pre.transform(cat)[3].tolist() == [0.0, 1.0]


def test_array_preprocessor_uint8_matches_float_path() -> None:
    rng = np.random.default_rng(0)
    x8 = rng.integers(0, 256, size=(50, 3, 4, 4), dtype=np.uint8)
    a = ArrayPreprocessor((3, 4, 4), pixel_max=255.0).fit(x8)
    b = ArrayPreprocessor((3, 4, 4)).fit(x8.astype(np.float64) / 255.0)
    np.testing.assert_allclose(a.center, b.center, rtol=1e-9)
    np.testing.assert_allclose(a.std, b.std, rtol=1e-9)
    np.testing.assert_allclose(a.center, (x8 / 255.0).mean(axis=(0, 2, 3)), rtol=1e-9)
    out = a.transform(x8)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    # samples given without the channel axis are reshaped when the sizes agree
    gray = ArrayPreprocessor((1, 4, 4), pixel_max=255.0).fit(x8[:, :1])
    torch.testing.assert_close(gray.transform(x8[:, 0]), gray.transform(x8[:, :1]))


def test_sequence_statistics_per_feature() -> None:
    x = np.random.default_rng(0).normal(size=(30, 6, 2)) * np.array([1.0, 10.0]) + np.array([0.0, 50.0])
    pre = ArrayPreprocessor((6, 2), channel_axis=-1).fit(x)
    np.testing.assert_allclose(pre.center, x.mean(axis=(0, 1)), rtol=1e-9)
    out = pre.transform(x)
    torch.testing.assert_close(out.std(dim=(0, 1), unbiased=False), torch.ones(2, dtype=torch.float32), atol=1e-4, rtol=0)


def test_unfitted_and_bad_state() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        TabularPreprocessor(["a"], ["numeric"]).transform(np.zeros((1, 1)))
    with pytest.raises(ConfigError, match="kind"):
        Preprocessor.from_state_dict({"kind": "nope"})
    with pytest.raises(ConfigError, match="scale"):
        ArrayPreprocessor((1, 2, 2), scale="robust")
