"""InputSpace: the units an attack's epsilon is measured in, and the range inputs are clipped to.

A model sees preprocessed inputs (standardized pixels, scaled columns). An epsilon means
something only in the data's own units: ``0.1`` for an image is a tenth of the pixel range, not
a tenth of a standard deviation. An ``InputSpace`` maps model inputs ``x`` to those units
``u = x * scale + shift`` and back, knows the range ``[low, high]`` that real inputs lie in, and
which features an attack may change (``mask``).

* Images and arrays (``ArrayPreprocessor``): ``u`` is the value before standardization, divided
  by ``pixel_max`` when the data are bytes, so image epsilons are in [0, 1] pixel units and
  images are clipped to [0, 1]; other arrays are clipped to the training rows' range per channel.
* Tables (``TabularPreprocessor``): the numeric columns in their scaled units (standard
  deviations under ``data.scale: standard``), clipped to the training rows' range; categorical
  columns (one-hot or index codes) are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from honing._core import DataError

__all__ = ["InputSpace"]


@dataclass(frozen=True, eq=False)
class InputSpace:
    """``u = x * scale + shift`` (tensors that broadcast over a batch ``(N, *sample)``), inputs
    in ``[low, high]`` (in ``u``), ``mask`` 1 where a feature may change (None: every feature);
    ``units`` says in words what one unit of epsilon is."""

    scale: torch.Tensor
    shift: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    mask: torch.Tensor | None = None
    units: str = "the model's input units"

    def to_units(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x) + self.shift.to(x)

    def to_model(self, u: torch.Tensor) -> torch.Tensor:
        return (u - self.shift.to(u)) / self.scale.to(u)

    def clip(self, u: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(u, self.high.to(u)), self.low.to(u))

    def masked(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` with the features an attack may not change set to 0."""
        return delta if self.mask is None else delta * self.mask.to(delta)

    @property
    def width(self) -> float:
        """The widest feature range: an epsilon this large reaches every allowed input."""
        return float((self.high - self.low).max())

    @classmethod
    def identity(cls, low: float = float("-inf"), high: float = float("inf"), *,
                 units: str = "the model's input units") -> InputSpace:
        """Attacks in the model's own input units, clipped to ``[low, high]``."""
        one, zero = torch.ones(()), torch.zeros(())
        return cls(one, zero, torch.tensor(float(low)), torch.tensor(float(high)), None, units)

    @classmethod
    def from_preprocessor(cls, pre: object, x_train: torch.Tensor) -> InputSpace:
        """The space of a fitted honing preprocessor; ``x_train``: the training rows as the model
        sees them (their range bounds arrays without a pixel scale, and table columns)."""
        kind = getattr(pre, "kind", None)
        if kind == "array":
            return _array_space(pre, x_train)
        if kind == "tabular":
            return _tabular_space(pre, x_train)
        raise DataError(f"adversarial attacks need numeric inputs (images, arrays or table columns); got {kind} "
                        "inputs, whose token ids have no gradient to follow")


def _array_space(pre: object, x_train: torch.Tensor) -> InputSpace:
    sample = tuple(x_train.shape[1:])
    axis, channels = pre.channel_axis, pre.num_channels  # type: ignore[attr-defined]
    shape = [1] * (len(sample) + 1)
    if axis is not None:
        shape[1 if axis == 1 else len(shape) - 1] = channels
    scale = torch.tensor(pre.std, dtype=torch.float32).reshape(shape)  # type: ignore[attr-defined]
    shift = torch.tensor(pre.center, dtype=torch.float32).reshape(shape)  # type: ignore[attr-defined]
    if pre.pixel_max:  # type: ignore[attr-defined]
        low, high = torch.zeros(shape), torch.ones(shape)
        units = f"[0, 1] pixel units (a pixel value / {pre.pixel_max:g})"  # type: ignore[attr-defined]
    else:
        u = x_train * scale + shift
        dims = [d for d in range(u.dim()) if shape[d] == 1]
        low, high = u.amin(dim=dims, keepdim=True), u.amax(dim=dims, keepdim=True)
        units = "the data's own units, clipped to the training rows' range per channel"
    return InputSpace(scale, shift, low, high, None, units)


def _tabular_space(pre: object, x_train: torch.Tensor) -> InputSpace:
    numeric = torch.zeros(x_train.shape[1])
    pos = 0
    for name, kind in zip(pre.columns, pre.kinds):  # type: ignore[attr-defined]
        width = 1
        if kind == "categorical" and pre.categorical == "onehot":  # type: ignore[attr-defined]
            width = len(pre.categories.get(name, []))  # type: ignore[attr-defined]
        elif kind == "numeric":
            numeric[pos] = 1.0
        pos += width
    if not bool(numeric.any()):
        raise DataError("adversarial attacks change numeric columns only; this table has none")
    low, high = x_train.amin(dim=0, keepdim=True), x_train.amax(dim=0, keepdim=True)
    scale = {"standard": "standard deviations", "minmax": "fractions of the training range"}.get(
        pre.scale, "the columns' own units")  # type: ignore[attr-defined]
    units = f"the numeric columns' scaled units ({scale}); categorical columns are not changed"
    return InputSpace(torch.ones(1, x_train.shape[1]), torch.zeros(1, x_train.shape[1]), low, high,
                      numeric.reshape(1, -1), units)
