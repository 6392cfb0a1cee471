"""The recipe's robustness parts: ``training.adversarial`` (adversarial training) and the
top-level ``robust`` section (the final model attacked on the test rows).

::

    training:
      adversarial: {method: trades, epsilon: 0.1, steps: 7, beta: 6.0}
    robust:
      epsilons: [0.05, 0.1]       # in the data's own units: [0, 1] pixel units for images
      attacks: [fgsm, pgd, apgd, square]
      rows: 1000                  # test rows attacked (null: all)

Epsilons are in the data's units (``honing.robust.InputSpace``): pixel fractions for images,
the numeric columns' scaled units for tables (categorical columns are never changed).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from honing.recipe._errors import Invalid, show
from honing.recipe._sections import Section

ATTACK_NAMES = ("fgsm", "pgd", "apgd", "square")
CORRUPTION_NAMES = ("gaussian_noise", "gaussian_blur", "contrast")


class RobustSection(Section):
    """Attack the final model on the test rows (the robust stage; docs/robust.md)."""

    epsilons: list[Annotated[float, Field(ge=0, le=1e6)]] = [0.05, 0.1]
    """attack radii in the data's units ([0, 1] pixel units for images); the first is the robustness objective's"""
    attacks: list[str] = list(ATTACK_NAMES)
    """fgsm, pgd, apgd (white-box) and square (black-box, scores only)"""
    norm: Literal["linf", "l2"] = "linf"
    """the ball: linf, or l2 (pgd and apgd only)"""
    steps: Annotated[int, Field(ge=1, le=1000)] = 20
    """pgd and apgd steps"""
    restarts: Annotated[int, Field(ge=1, le=100)] = 1
    """pgd random restarts (each row keeps its worst)"""
    queries: Annotated[int, Field(ge=1, le=100000)] = 1000
    """square: model queries per row"""
    rows: Annotated[int, Field(ge=1)] | None = 1000
    """test rows attacked (the first ones; validation rows for the robustness objective); null: all"""
    corruptions: list[str] | None = None
    """images: gaussian_noise, gaussian_blur, contrast at severities 1-5; null: all three for images, none otherwise"""

    @field_validator("epsilons")
    @classmethod
    def _epsilons(cls, value: list[float]) -> list[float]:
        if not value:
            raise Invalid([((), "got []; allowed: one or more radii >= 0")])
        return value

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, value: list[str]) -> list[str]:
        bad = [((i,), f"got {show(a)}; allowed: {', '.join(ATTACK_NAMES)}") for i, a in enumerate(value)
               if a not in ATTACK_NAMES]
        if bad:
            raise Invalid(bad)
        if not value:
            raise Invalid([((), f"got []; allowed: one or more of {', '.join(ATTACK_NAMES)}")])
        return value

    @field_validator("corruptions")
    @classmethod
    def _corruptions(cls, value: list[str] | None) -> list[str] | None:
        bad = [((i,), f"got {show(c)}; allowed: {', '.join(CORRUPTION_NAMES)}") for i, c in enumerate(value or [])
               if c not in CORRUPTION_NAMES]
        if bad:
            raise Invalid(bad)
        return value
