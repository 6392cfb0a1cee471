"""IDX files (the MNIST format): parse with numpy, find the four files of a set in a folder.

Layout (LeCun et al., "The MNIST database"): two zero bytes, a dtype code, the number of
dimensions, then one big-endian uint32 per dimension, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from honing._core import DataError

# dtype code (byte 2 of the magic number) -> big-endian numpy dtype
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",  # unsigned byte
    0x09: ">i1",  # signed byte
    0x0B: ">i2",  # short
    0x0C: ">i4",  # int
    0x0D: ">f4",  # float
    0x0E: ">f8",  # double
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip-compressed when its name ends in ``.gz``) into a numpy array.

    The data is read straight into the array's buffer (no second copy of a large file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {str(path)!r}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            dims_bytes = f.read(4 * head[3]) if len(head) == 4 else b""
            dtype, dims = _header(head + dims_bytes, name=str(path))
            arr = np.empty(dims, dtype=dtype)
            got = _read_into(f, memoryview(arr.reshape(-1)).cast("B")) if arr.size else 0
            extra = f.read(1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read IDX file {str(path)!r}: {exc}") from exc
    if got != arr.nbytes or extra:
        raise DataError(
            f"{str(path)!r}: IDX dims {dims} need {arr.nbytes} data bytes, file has "
            f"{'fewer (truncated)' if got != arr.nbytes else 'more (trailing bytes)'}"
        )
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _read_into(f: Any, buf: memoryview, chunk: int = 1 << 20) -> int:
    """Fill ``buf`` from ``f`` in chunks (gzip would otherwise allocate a second full copy)."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got : got + chunk])
        if not n:
            break
        got += n
    return got


def _header(data: bytes, *, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """dtype and dims from the magic number and the dimension sizes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name} is not an IDX file: the first two bytes must be zero")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unsupported IDX dtype code 0x{code:02X}; allowed: {allowed}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header says 0 dimensions")
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, need {4 + 4 * ndim})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.dtype(IDX_DTYPES[code]), dims


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (a read-only view for byte data)."""
    dtype, dims = _header(data, name=name)
    header = 4 + 4 * len(dims)
    count = int(np.prod(dims, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{name}: IDX dims {dims} need {expected} bytes, got {len(data)} "
            f"({'truncated' if len(data) < expected else 'trailing bytes'})"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


_ROLES = {
    "train_images": (("train",), ("images", "idx3")),
    "train_labels": (("train",), ("labels", "idx1")),
    "test_images": (("t10k", "test"), ("images", "idx3")),
    "test_labels": (("t10k", "test"), ("labels", "idx1")),
}


def find_idx_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The train/test image and label files of an MNIST-format set in ``folder``.

    Names are matched like the usual ones (``train-images-idx3-ubyte[.gz]``,
    ``t10k-labels-idx1-ubyte``, ``test_images.idx`` ...); when both a raw and a ``.gz``
    version exist the raw one is used.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"IDX folder not found: {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    found: dict[str, Path] = {}
    for role, (split_words, kind_words) in _ROLES.items():
        matches = [
            p for p in files
            if any(w in p.name.lower() for w in split_words) and any(w in p.name.lower() for w in kind_words)
        ]
        # a raw file and its .gz twin count once (the raw one: no decompression)
        stems = {p.name[:-3] if p.name.endswith(".gz") else p.name for p in matches}
        if len(stems) > 1:
            raise DataError(
                f"ambiguous {role.replace('_', ' ')} file in {str(folder)!r}: "
                f"{', '.join(sorted(p.name for p in matches))}"
            )
        if not stems:
            raise DataError(
                f"no {role.replace('_', ' ')} file in {str(folder)!r} (looked for names with "
                f"{'/'.join(split_words)} and {'/'.join(kind_words)}); files there: "
                f"{', '.join(p.name for p in files) or 'none'}"
            )
        stem = stems.pop()
        raw = folder / stem
        found[role] = raw if raw.is_file() else folder / f"{stem}.gz"
    return found
