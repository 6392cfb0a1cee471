"""Row subsets of a labelled set: keep chosen classes (re-indexed), keep a fraction of the training rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from honing._core import ConfigError, check_number


def check_classes(classes: Any) -> list[int | str] | None:
    """``classes`` at the edge: None, or a non-empty list of unique integers / strings."""
    if classes is None:
        return None
    allowed = "allowed: null, or a non-empty list of unique class labels (integers) or class names (strings)"
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or len(classes) == 0:
        raise ConfigError(f"invalid classes: got {classes!r}; {allowed}")
    out: list[int | str] = []
    for item in classes:
        if isinstance(item, np.integer):
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, (int, str)) or (isinstance(item, str) and not item.strip()):
            raise ConfigError(f"invalid classes: got {item!r} in {list(classes)!r}; {allowed}")
        if item in out:
            raise ConfigError(f"invalid classes: got {item!r} twice in {list(classes)!r}; {allowed}")
        out.append(item)
    return out


def check_train_fraction(value: Any) -> float | None:
    return check_number("train_fraction", value, low=0.0, high=1.0, low_inclusive=False, allow_none=True)


def class_codes(classes: list[int | str], names: list[str], *, labels_are_codes: bool, source: str) -> list[int]:
    """The label index of each requested class, in the order given.

    An integer is a label as it appears in the source: the index itself when the source's labels
    are 0..K-1 (``labels_are_codes``), else the class whose name is that number. A string is a
    class name. Two entries naming the same class, or an unknown one, raise ConfigError.
    """
    index = {name: i for i, name in enumerate(names)}
    codes: list[int] = []
    for item in classes:
        if isinstance(item, int) and labels_are_codes:
            code = item if 0 <= item < len(names) else None
        else:
            code = index.get(str(item).strip())
        if code is None:
            avail = (", ".join(f"{i} ({n!r})" for i, n in enumerate(names)) if labels_are_codes
                     else ", ".join(map(repr, names)))
            raise ConfigError(f"invalid classes for {source!r}: unknown class {item!r}; allowed: {avail}")
        if code in codes:
            raise ConfigError(f"invalid classes for {source!r}: {item!r} names class {names[code]!r} again; "
                              "allowed: each class once")
        codes.append(code)
    return codes


def keep_classes(x: np.ndarray, y: np.ndarray, codes: list[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label is in ``codes``, labels re-indexed to the position in ``codes`` (0..len-1)."""
    remap = np.full(num_classes, -1, dtype=np.int64)
    remap[codes] = np.arange(len(codes))
    new = remap[y]
    keep = new >= 0
    return x[keep], new[keep]


def fraction_of(idx: np.ndarray, fraction: float, strat: np.ndarray | None, seed: int) -> np.ndarray:
    """``round(fraction * len(idx))`` of ``idx`` (at least 1), in their order; seeded.

    With ``strat`` (labels of ``idx``) each class keeps its share, largest remainders first, and
    at least one row when there are at least as many rows to keep as classes.
    """
    n = len(idx)
    k = max(1, int(round(fraction * n)))
    if k >= n:
        return idx
    rng = np.random.default_rng([seed, 1])  # its own stream: the same rows whatever came before
    if strat is None:
        return idx[np.sort(rng.permutation(n)[:k])]
    classes, inverse, counts = np.unique(strat, return_inverse=True, return_counts=True)
    alloc = _allocate(counts, k)
    chosen = [np.flatnonzero(inverse == c)[rng.permutation(counts[c])[: alloc[c]]] for c in range(len(classes))]
    return idx[np.sort(np.concatenate(chosen))]


def _allocate(counts: np.ndarray, k: int) -> np.ndarray:
    """Rows per class summing to ``k``: proportional, at least 1 each when ``k`` allows it."""
    ideal = k * counts / counts.sum()
    alloc = np.floor(ideal).astype(np.int64)
    if k >= len(counts):
        alloc = np.maximum(alloc, 1)
    while alloc.sum() < k:  # the largest shortfall gets one more (ties: the first class)
        alloc[np.argmax(np.where(alloc < counts, ideal - alloc, -np.inf))] += 1
    while alloc.sum() > k:  # only after raising classes to 1: take from the largest excess
        alloc[np.argmax(np.where(alloc > 1, alloc - ideal, -np.inf))] -= 1
    return alloc
