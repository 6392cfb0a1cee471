"""ArrayPreprocessor: images ``(N, C, H, W)``, sequences ``(N, T, F)``, flat pixel vectors.

One mean/std (or min/max) per channel, computed without float64 copies of the whole array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from honing._core import DataError, check_choice
from honing.data._preprocess import SCALES, Preprocessor


class ArrayPreprocessor(Preprocessor):
    """Arrays ``(N, *sample_shape)`` -> float32, one statistic per channel.

    ``pixel_max`` (255 for bytes) first maps values to [0, 1]. ``channel_axis`` is 1 for images
    ``(N, C, H, W)``, -1 for sequences ``(N, T, F)``, None for one scalar over everything.
    Statistics of uint8 data come from a 256-bin histogram: exact and without float copies.
    """

    kind = "array"

    def __init__(
        self,
        sample_shape: Sequence[int],
        *,
        scale: str | None = "standard",
        pixel_max: float | None = None,
        channel_axis: int | None = 1,
        scale_target: bool = False,
    ) -> None:
        super().__init__(scale_target=scale_target)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.scale = check_choice("scale", scale, SCALES)
        self.pixel_max = None if pixel_max is None else float(pixel_max)
        self.channel_axis = check_choice("channel_axis", channel_axis, (1, -1, None))
        self.center: list[float] = []
        self.std: list[float] = []

    def _options(self) -> dict[str, Any]:
        return {"sample_shape": list(self.sample_shape), "scale": self.scale, "pixel_max": self.pixel_max,
                "channel_axis": self.channel_axis, "scale_target": self.scale_target}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.sample_shape

    @property
    def num_channels(self) -> int:
        if self.channel_axis is None:
            return 1
        return self.sample_shape[0] if self.channel_axis == 1 else self.sample_shape[-1]

    def _channel(self, x: np.ndarray, c: int) -> np.ndarray:
        if self.channel_axis is None:
            return x
        return x[:, c] if self.channel_axis == 1 else x[..., c]

    def _check(self, x: np.ndarray) -> np.ndarray:
        if x.ndim >= 1 and x.shape[1:] != self.sample_shape:
            if x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(self.sample_shape)):
                return x.reshape((x.shape[0], *self.sample_shape))
            raise DataError(f"expected samples of shape {self.sample_shape}; got an array of shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise DataError(f"expected a numeric array; got dtype {x.dtype}")
        return x

    def _fit_x(self, x: np.ndarray) -> None:
        x = self._check(x)
        if x.shape[0] == 0:
            raise DataError("cannot fit a preprocessor on zero rows")
        unit = self.pixel_max or 1.0
        self.center, self.std = [], []
        for c in range(self.num_channels):
            xc = self._channel(x, c)
            if x.dtype == np.uint8:
                counts = np.bincount(xc.reshape(-1), minlength=256).astype(np.float64)
                values = np.arange(256, dtype=np.float64) / unit
                mean = float(counts @ values / counts.sum())
                var = float(counts @ (values - mean) ** 2 / counts.sum())
                nz = np.nonzero(counts)[0]
                low, high = values[nz[0]], values[nz[-1]]
            else:
                mean = float(np.mean(xc, dtype=np.float64)) / unit
                sq = 0.0
                for start in range(0, xc.shape[0], 4096):  # chunks: no full float64 copy
                    chunk = xc[start : start + 4096].astype(np.float64) / unit - mean
                    sq += float(np.dot(chunk.reshape(-1), chunk.reshape(-1)))
                var = sq / xc.size
                low, high = float(xc.min()) / unit, float(xc.max()) / unit
            center, std = 0.0, 1.0
            if self.scale == "standard":
                center, std = mean, math.sqrt(var)
            elif self.scale == "minmax":
                center, std = float(low), float(high - low)
            if not np.isfinite(center):
                raise DataError("the training array holds NaN or infinite values")
            self.center.append(center)
            self.std.append(std if std > 0 and np.isfinite(std) else 1.0)

    def _transform_x(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        out = np.empty(x.shape, dtype=np.float32)
        unit = self.pixel_max or 1.0
        for c in range(self.num_channels):
            a = np.float32(1.0 / (unit * self.std[c]))
            b = np.float32(-self.center[c] / self.std[c])
            oc = self._channel(out, c)
            np.multiply(self._channel(x, c), a, out=oc, dtype=np.float32, casting="unsafe")
            oc += b
        if x.dtype.kind == "f" and not np.isfinite(out).all():
            raise DataError("the array holds NaN or infinite values")
        return out

    def _stats(self) -> dict[str, Any]:
        return {"center": self.center, "std": self.std}

    def _load_stats(self, stats: dict[str, Any]) -> None:
        self.center = [float(v) for v in stats["center"]]
        self.std = [float(v) for v in stats["std"]]
