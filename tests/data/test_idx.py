"""IDX parsing on synthetic files (gz and raw), file discovery, idx: and fashion-mnist sources."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from honing._core import ConfigError, DataError
from honing.data import FASHION_MNIST_CLASSES, find_idx_files, load, parse_idx, read_idx


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_ubyte_raw_and_gz(tmp_path: Path, name: str, files) -> None:
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(files.write_idx(tmp_path / name, x))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize(("code", "dtype"), [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                             (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_other_dtypes_big_endian(tmp_path: Path, code: int, dtype: type, files) -> None:
    x = (np.arange(12).reshape(3, 4) - 5).astype(dtype) * 3
    out = read_idx(files.write_idx(tmp_path / "v.idx", x, code))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, x)


def test_parse_idx_matches_read_idx(files) -> None:
    y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(files.idx_bytes(y)), y)


def test_idx_errors_name_the_problem(tmp_path: Path, files) -> None:
    good = files.idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="0x07"):
        parse_idx(good[:2] + bytes([0x07]) + good[3:])
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\x01" + good[1:])
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:-1])
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-2]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "long").write_bytes(good + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        read_idx(tmp_path / "long")
    with pytest.raises(DataError, match="nothere"):
        read_idx(tmp_path / "nothere")


def test_find_idx_files_prefers_raw_and_reports_missing(tmp_path: Path, files) -> None:
    folder = files.make_idx_set(tmp_path / "s", gz=True)
    files.write_idx(folder / "train-images-idx3-ubyte", np.zeros((1, 2, 2), dtype=np.uint8))
    files = find_idx_files(folder)
    assert files["train_images"].name == "train-images-idx3-ubyte"
    assert files["test_labels"].name == "t10k-labels-idx1-ubyte.gz"
    os.remove(folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="test labels"):
        find_idx_files(folder)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_source_uses_official_test_set(tmp_path: Path, gz: bool, files) -> None:
    folder = files.make_idx_set(tmp_path / "s", n_train=120, n_test=40, gz=gz)
    ds = load(f"idx:{folder}", val_size=0.25, seed=0)
    assert ds.task == "classification" and ds.num_outputs == 4 and ds.class_names == ["0", "1", "2", "3"]
    assert ds.input_shape == (1, 6, 6)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (90, 30, 40)
    raw_test = read_idx(folder / f"t10k-labels-idx1-ubyte{'.gz' if gz else ''}")
    np.testing.assert_array_equal(ds.test.y.numpy(), raw_test)  # official test set, in order
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    # stratified validation carve-out: 30 rows, 4 balanced classes
    assert sorted(torch.bincount(ds.val.y).tolist()) == [7, 7, 8, 8]


def test_idx_flat_and_limit(idx_set: Path) -> None:
    ds = load(f"idx:{idx_set}", image=False, limit=80)
    assert ds.input_shape == (36,)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 80
    assert len(ds.test) == 20  # limit shared in proportion 120:40


def test_fashion_mnist_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load("fashion-mnist", folder=str(tmp_path / "absent"))
    assert "folder=" in str(info.value)
    with pytest.raises(ConfigError, match="folder"):
        load("sklearn:iris", folder=str(tmp_path))


def test_fashion_mnist_folder_override(idx_set: Path) -> None:
    ds = load("fashion-mnist", folder=str(idx_set))
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.num_outputs == 10  # the label space is fixed
    assert ds.input_shape == (1, 6, 6)


def test_fashion_mnist_real_load() -> None:
    assert Path(FASHION).is_dir(), f"{FASHION} is missing: `make setup` installs dataset-fashion-mnist (as root)"
    ds = load("fashion-mnist", seed=0)
    assert ds.input_shape == (1, 28, 28) and ds.num_outputs == 10
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.class_names[0] == "T-shirt/top"
    assert len(ds.test) == 10_000 and len(ds.train) + len(ds.val) == 60_000 - ds.info["duplicates_removed"]
    assert len(ds.val) == 9_000
    assert ds.train.x.dtype == torch.float32 and ds.train.x.shape[1:] == (1, 28, 28)
    assert ds.test.y.dtype == torch.int64 and torch.bincount(ds.test.y).tolist() == [1000] * 10
    # one scalar mean/std from the training images only
    assert abs(float(ds.train.x.mean())) < 1e-3 and abs(float(ds.train.x.std()) - 1) < 1e-3
    state = ds.preprocessor.state_dict()
    assert len(state["stats"]["center"]) == 1 and 0.2 < state["stats"]["center"][0] < 0.4
    # reusable on raw bytes (N, 28, 28)
    raw = read_idx(Path(FASHION) / "t10k-images-idx3-ubyte.gz")[:5]
    torch.testing.assert_close(ds.preprocessor.transform(raw), ds.test.x[:5])
