"""Argument checks at the edge. One message template: what, where, got, allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from honing._core._errors import ConfigError


def _where(where: str | None) -> str:
    return f" in {where}" if where else ""


def check_choice(name: str, value: Any, allowed: Iterable[Any], *, where: str | None = None) -> Any:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(
            f"invalid {name}{_where(where)}: got {value!r}; allowed: {', '.join(repr(a) for a in allowed)}"
        )
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allow_none: bool = False,
    where: str | None = None,
) -> float | None:
    """Check a real number lies in a range; returns it as float (or None if allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
        raise ConfigError(f"invalid {name}{_where(where)}: got {value!r}; allowed: a number{_range(low, high, low_inclusive, high_inclusive)}")
    v = float(value)
    bad = (
        (low is not None and (v < low if low_inclusive else v <= low))
        or (high is not None and (v > high if high_inclusive else v >= high))
    )
    if bad:
        raise ConfigError(f"invalid {name}{_where(where)}: got {value!r}; allowed: a number{_range(low, high, low_inclusive, high_inclusive)}")
    return v


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
    where: str | None = None,
) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"invalid {name}{_where(where)}: got {value!r}; allowed: an integer{_range(low, high, True, True)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"invalid {name}{_where(where)}: got {value!r}; allowed: an integer{_range(low, high, True, True)}")
    return int(value)


def check_probability(name: str, value: Any, *, where: str | None = None, allow_one: bool = False) -> float:
    out = check_number(name, value, low=0.0, high=1.0, high_inclusive=allow_one, where=where)
    assert out is not None
    return out


def _range(low: float | None, high: float | None, lo_inc: bool, hi_inc: bool) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>=' if lo_inc else '>'} {low}"
    if low is None:
        return f" {'<=' if hi_inc else '<'} {high}"
    return f" in {'[' if lo_inc else '('}{low}, {high}{']' if hi_inc else ')'}"


def env_number(name: str, default: float, *, low: float, low_inclusive: bool, allowed: str,
               integer: bool = False) -> float:
    """The environment variable ``name`` as a number above ``low`` (``default`` when unset or
    empty; a whole number with ``integer``); anything else is a ConfigError that names the
    variable and says what is ``allowed``."""
    import os

    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        value = math.nan
    if not (value >= low if low_inclusive else value > low):
        raise ConfigError(f"invalid {name}: got {text!r}; allowed: {allowed}")
    return value
