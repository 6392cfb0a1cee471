"""sklearn and npz sources, and source-string validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError, DataError
from honing.data import list_sources, load

SKLEARN = [
    ("digits", "classification", (64,), 10, 1797),
    ("iris", "classification", (4,), 3, 149),  # iris has one duplicated row
    ("wine", "classification", (13,), 3, 178),
    ("breast_cancer", "classification", (30,), 2, 569),
    ("diabetes", "regression", (10,), 1, 442),
]


@pytest.mark.parametrize(("name", "task", "shape", "outputs", "rows"), SKLEARN)
def test_sklearn_sets(name: str, task: str, shape: tuple[int, ...], outputs: int, rows: int) -> None:
    ds = load(f"sklearn:{name}", seed=0)
    assert ds.task == task and ds.input_shape == shape and ds.num_outputs == outputs
    assert len(ds.train) + len(ds.val) + len(ds.test) == rows
    assert len(ds.test) == round(0.15 * rows) and len(ds.val) == round(0.15 * rows)
    assert ds.train.x.dtype == torch.float32
    if task == "classification":
        assert ds.train.y.dtype == torch.int64 and ds.train.y.shape == (len(ds.train),)
        assert len(ds.class_names) == outputs
    else:
        assert ds.train.y.dtype == torch.float32 and ds.train.y.shape == (len(ds.train), 1)
        assert ds.class_names is None


def test_sklearn_names() -> None:
    assert load("sklearn:iris").class_names == ["setosa", "versicolor", "virginica"]
    assert load("sklearn:digits").class_names == [str(i) for i in range(10)]


def test_digits_as_images() -> None:
    flat = load("sklearn:digits", seed=0)
    img = load("sklearn:digits", image=True, seed=0)
    assert img.input_shape == (1, 8, 8) and img.train.x.shape == (len(flat.train), 1, 8, 8)
    torch.testing.assert_close(img.train.y, flat.train.y)  # same rows, same order
    # one statistic for the single channel (not one per pixel)
    assert len(img.preprocessor.state_dict()["stats"]["center"]) == 1
    assert abs(float(img.train.x.mean())) < 1e-5 and abs(float(img.train.x.std(unbiased=False)) - 1) < 1e-4
    with pytest.raises(ConfigError, match="image"):
        load("sklearn:iris", image=True)


@pytest.mark.parametrize("source", ["foo", "foo:bar", "csv:", "sklearn:mnist", "fashion_mnist", "", "idx"])
def test_unknown_source_lists_allowed_forms(source: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(source)
    msg = str(info.value)
    assert "invalid source" in msg and repr(source) in msg
    assert "digits" in msg  # the allowed forms (or sklearn names) are listed
    if not source.startswith("sklearn:"):
        assert "csv:<path>" in msg and "npz:<path>" in msg and "fashion-mnist" in msg


def test_list_sources() -> None:
    assert "fashion-mnist" in list_sources() and "csv:<path>" in list_sources()


def test_bad_arguments_name_themselves() -> None:
    for kwargs, word in [({"val_size": 1.2}, "val_size"), ({"val_size": 0.6, "test_size": 0.5}, r"val_size \+ test_size"),
                         ({"scale": "robust"}, "scale"), ({"task": "ranking"}, "task"), ({"impute": "zero"}, "impute"),
                         ({"categorical": "hash"}, "categorical"), ({"limit": 1}, "limit"), ({"seed": -1}, "seed"),
                         ({"target": "y"}, "target")]:
        with pytest.raises(ConfigError, match=word):
            load("sklearn:iris", **kwargs)
    with pytest.raises(ConfigError, match="task"):
        load("sklearn:diabetes", task="classification")


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_tabular(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 5)), rng.integers(0, 3, size=100)
    ds = load(f"npz:{_npz(tmp_path / 'd.npz', x=x, y=y)}", seed=1)
    assert ds.task == "classification" and ds.num_outputs == 3 and ds.input_shape == (5,)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 100
    ds = load(f"npz:{_npz(tmp_path / 'r.npz', x=x, y=rng.normal(size=(100, 2)))}")
    assert ds.task == "regression" and ds.num_outputs == 2 and ds.train.y.shape[1] == 2


def test_npz_fixed_test_and_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 7, 7), dtype=np.uint8)
    xt = rng.integers(0, 256, size=(20, 7, 7), dtype=np.uint8)
    y, yt = np.arange(60) % 2, np.arange(20) % 2
    ds = load(f"npz:{_npz(tmp_path / 'i.npz', x=x, y=y, x_test=xt, y_test=yt)}", val_size=0.2)
    assert ds.input_shape == (1, 7, 7) and len(ds.test) == 20 and len(ds.val) == 12
    np.testing.assert_array_equal(ds.test.y.numpy(), yt)


def test_npz_string_labels_are_indexed(tmp_path: Path) -> None:
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.array(["cat", "dog"] * 10)
    ds = load(f"npz:{_npz(tmp_path / 's.npz', x=x, y=y)}", val_size=0.2, test_size=0.2)
    assert ds.class_names == ["cat", "dog"] and ds.num_outputs == 2


def test_npz_errors_name_missing_keys(tmp_path: Path) -> None:
    path = _npz(tmp_path / "bad.npz", x=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(DataError, match="'y'") as info:
        load(f"npz:{path}")
    assert "'labels'" in str(info.value)  # says what the file has
    path = _npz(tmp_path / "half.npz", x=np.zeros((4, 2)), y=np.zeros(4), x_test=np.zeros((2, 2)))
    with pytest.raises(DataError, match="'y_test'"):
        load(f"npz:{path}")
    with pytest.raises(DataError, match="absent.npz"):
        load(f"npz:{tmp_path / 'absent.npz'}")
    path = _npz(tmp_path / "len.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="one row per sample"):
        load(f"npz:{path}")


def test_npz_integer_labels(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float64).reshape(30, 2)
    dense = load(f"npz:{_npz(tmp_path / 'a.npz', x=x, y=np.array([0, 1, 3] * 10))}")
    assert dense.class_names == ["0", "1", "2", "3"]  # labels kept as given; 2 is just absent
    sparse = load(f"npz:{_npz(tmp_path / 'b.npz', x=x, y=np.array([5, 100, 7] * 10))}")
    assert sparse.class_names == ["5", "7", "100"] and int(sparse.train.y.max()) == 2
