"""Helpers for the data tests: small files written into tmp_path."""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """IDX encoding written independently of the parser: magic, big-endian dims, big-endian data."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=dtypes[code]).tobytes()


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08) -> Path:
    data = idx_bytes(arr, code)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_idx_set(folder: Path, *, n_train: int = 120, n_test: int = 40, size: int = 6, gz: bool = True,
                 classes: int = 4, seed: int = 0) -> Path:
    """A tiny MNIST-format set whose images are distinct (the label is drawn into the top row)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        y = (np.arange(n) % classes).astype(np.uint8)
        write_idx(folder / f"{part}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{part}-labels-idx1-ubyte{ext}", y)
    return folder


@pytest.fixture
def idx_set(tmp_path: Path) -> Path:
    return make_idx_set(tmp_path / "mini")


def write_npz(path: Path, **arrays: np.ndarray) -> str:
    """Arrays saved to ``path``; returns the ``npz:`` source string."""
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.fixture
def imbalanced(tmp_path: Path) -> str:
    """300 rows, classes of 200 / 70 / 30; feature column 0 is the row id."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [200, 70, 30])
    x = np.column_stack([np.arange(300), rng.normal(size=300)])  # column 0: row id
    return write_npz(tmp_path / "imb.npz", x=x, y=y)


class Files:
    """The helpers above, handed to tests as the ``files`` fixture (tests import no conftest)."""

    write_csv = staticmethod(write_csv)
    idx_bytes = staticmethod(idx_bytes)
    write_idx = staticmethod(write_idx)
    make_idx_set = staticmethod(make_idx_set)
    write_npz = staticmethod(write_npz)


@pytest.fixture
def files() -> type[Files]:
    return Files
