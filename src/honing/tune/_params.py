"""Search parameters: typed distributions over dotted recipe paths, with ``when`` conditions.

Choice values may be any JSON value; Optuna's categoricals hold only primitives, so other
values travel as their JSON text and are decoded back before anyone sees them.
"""

from __future__ import annotations

import copy
import decimal
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from honing._core import ConfigError

if TYPE_CHECKING:
    import optuna

_PRIMITIVE = (type(None), bool, int, float, str)


class SpaceError(ConfigError):
    """A search-space entry is malformed; ``.path`` names it (e.g. ``tune.space.model.dropout``)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (SpaceError, (self.path, self.detail))


def _same(a: Any, b: Any) -> bool:
    """JSON-style equality: 1 == 1.0, but True != 1, and lists compare element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, Mapping)) or isinstance(b, (list, tuple, Mapping)):
        return False
    return bool(a == b)


def matches(actual: Any, expected: Any) -> bool:
    """``expected`` is one value, or a list of allowed values (the list itself also matches)."""
    if isinstance(expected, (list, tuple)):
        return _same(actual, expected) or any(_same(actual, e) for e in expected)
    return _same(actual, expected)


def _json_value(path: str, what: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise SpaceError(path, f"{what} {value!r} is not a JSON value; allowed: null, booleans, numbers, strings, lists, mappings") from None


def _number(path: str, what: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(path, f"{what} must be a finite number; got {value!r}")
    return value


def _integer(path: str, what: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpaceError(path, f"{what} must be an integer; got {value!r}")
    return value


def _check_when(path: str, when: Mapping[str, Any] | None) -> dict[str, Any]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise SpaceError(path, f"when must be a non-empty mapping path -> value (or list of values); got {when!r}")
    out: dict[str, Any] = {}
    for ref, expected in when.items():
        if not isinstance(ref, str) or not ref:
            raise SpaceError(path, f"when keys must be dotted paths; got {ref!r}")
        if ref == path:
            raise SpaceError(path, "when refers to the parameter itself; allowed: another parameter or a fixed field")
        out[ref] = _json_value(path, f"when value for {ref}", expected)
    return out


def check_path(path: Any) -> str:
    if not isinstance(path, str) or not path.strip():
        raise SpaceError(str(path), f"a parameter path must be a non-empty dotted string; got {path!r}")
    return path


MAX_GRID_VALUES = 1_000_000  # values of one parameter, and points of a whole grid


def _steps(path: str, low: float | int, high: float | int, step: float | int) -> list[float | int]:
    """Every ``low + k * step <= high`` (exact decimal arithmetic, as Optuna's brute force does).
    ConfigError, before any list is built, when that is more than MAX_GRID_VALUES values."""
    lo, hi, st = (decimal.Decimal(str(v)) for v in (low, high, step))
    count = int((hi - lo) / st) + 1
    if count > MAX_GRID_VALUES:
        raise ConfigError(f"search parameter {path}: {count:,} grid values from {low} to {high} by {step}; allowed: "
                          f"at most {MAX_GRID_VALUES:,} (a larger step, or another sampler than grid)")
    if isinstance(low, int) and isinstance(high, int) and isinstance(step, int):
        return list(range(low, high + 1, step))
    out: list[float | int] = []
    while lo <= hi:
        out.append(float(lo))
        lo += st
    return out


@dataclass(frozen=True)
class FloatParam:
    """A real number in ``[low, high]``; ``log`` samples on a log scale, ``step`` discretises."""

    path: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: Mapping[str, Any] | None = field(default=None)
    prior: float | None = None

    def __init__(self, path: str, low: float, high: float, *, log: bool = False, step: float | None = None,
                 when: Mapping[str, Any] | None = None, prior: float | None = None) -> None:
        path = check_path(path)
        low, high = _number(path, "low", low), _number(path, "high", high)
        if low > high:
            raise SpaceError(path, f"low {low!r} is greater than high {high!r}; allowed: low <= high")
        if not isinstance(log, bool):
            raise SpaceError(path, f"log must be true or false; got {log!r}")
        if log and low <= 0:
            raise SpaceError(path, f"log scale needs low > 0; got low={low!r}")
        if step is not None:
            step = _number(path, "step", step)
            if step <= 0:
                raise SpaceError(path, f"step must be > 0; got {step!r}")
            if log:
                raise SpaceError(path, "log and step cannot be combined; allowed: one of them")
        if prior is not None:
            prior = float(_number(path, "prior", prior))
            if not low <= prior <= high:
                raise SpaceError(path, f"prior {prior!r} is outside [{low}, {high}]; allowed: a value of the range")
            if step is not None and abs((prior - low) / step - round((prior - low) / step)) > 1e-9:
                raise SpaceError(path, f"prior {prior!r} is not on the step {step} from {low}; allowed: low + k * step")
        for name, value in (("path", path), ("low", float(low)), ("high", float(high)), ("log", log),
                            ("step", None if step is None else float(step)), ("when", _check_when(path, when)),
                            ("prior", prior)):
            object.__setattr__(self, name, value)

    @property
    def is_finite(self) -> bool:
        return self.step is not None

    def values(self) -> list[Any]:
        if self.step is None:
            raise ConfigError(f"search parameter {self.path} is a float without step, so it has no grid; "
                              "allowed for grid search: choice, grid, int, or float with step")
        return _steps(self.path, self.low, self.high, self.step)

    def suggest(self, trial: optuna.trial.BaseTrial) -> float:
        return trial.suggest_float(self.path, self.low, self.high, log=self.log, step=self.step)

    def decode(self, raw: Any) -> Any:
        return raw

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"float": [self.low, self.high]}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        if self.when:
            spec["when"] = copy.deepcopy(dict(self.when))
        if self.prior is not None:
            spec["prior"] = self.prior
        return spec


@dataclass(frozen=True)
class IntParam:
    """An integer in ``[low, high]`` (both included) by ``step``; ``log`` needs ``step == 1``."""

    path: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    when: Mapping[str, Any] | None = field(default=None)
    prior: int | None = None

    def __init__(self, path: str, low: int, high: int, *, log: bool = False, step: int = 1,
                 when: Mapping[str, Any] | None = None, prior: int | None = None) -> None:
        path = check_path(path)
        low, high = _integer(path, "low", low), _integer(path, "high", high)
        if low > high:
            raise SpaceError(path, f"low {low!r} is greater than high {high!r}; allowed: low <= high")
        if not isinstance(log, bool):
            raise SpaceError(path, f"log must be true or false; got {log!r}")
        if log and low <= 0:
            raise SpaceError(path, f"log scale needs low > 0; got low={low!r}")
        step = _integer(path, "step", step)
        if step < 1:
            raise SpaceError(path, f"step must be an integer >= 1; got {step!r}")
        if log and step != 1:
            raise SpaceError(path, f"log and step cannot be combined (got step={step}); allowed: one of them")
        if prior is not None:
            prior = _integer(path, "prior", prior)
            if not low <= prior <= high or (prior - low) % step:
                raise SpaceError(path, f"prior {prior!r} is not a value of {low}..{high} by {step}; allowed: one of them")
        for name, value in (("path", path), ("low", low), ("high", high), ("log", log), ("step", step),
                            ("when", _check_when(path, when)), ("prior", prior)):
            object.__setattr__(self, name, value)

    @property
    def is_finite(self) -> bool:
        return True

    def values(self) -> list[Any]:
        return _steps(self.path, self.low, self.high, self.step)

    def suggest(self, trial: optuna.trial.BaseTrial) -> int:
        return trial.suggest_int(self.path, self.low, self.high, step=self.step, log=self.log)

    def decode(self, raw: Any) -> Any:
        return raw

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"int": [self.low, self.high]}
        if self.log:
            spec["log"] = True
        if self.step != 1:
            spec["step"] = self.step
        if self.when:
            spec["when"] = copy.deepcopy(dict(self.when))
        if self.prior is not None:
            spec["prior"] = self.prior
        return spec


@dataclass(frozen=True)
class ChoiceParam:
    """One of ``choices`` (any JSON values); ``grid=True`` marks the recipe's ``{grid: [...]}`` form."""

    path: str
    choices: tuple[Any, ...]
    grid: bool = False
    when: Mapping[str, Any] | None = field(default=None)
    prior: Any = None

    def __init__(self, path: str, choices: Iterable[Any], *, when: Mapping[str, Any] | None = None,
                 grid: bool = False, prior: Any = None) -> None:
        path = check_path(path)
        if isinstance(choices, (str, bytes, Mapping)) or not isinstance(choices, Iterable):
            raise SpaceError(path, f"choices must be a list of values; got {choices!r}")
        values = [_json_value(path, "choice", c) for c in choices]
        if not values:
            raise SpaceError(path, "choices are empty; allowed: a list of at least one value")
        encoded = [_encode(v) for v in values]
        for i, a in enumerate(encoded):
            for b in encoded[:i]:
                if _same(a, b):
                    raise SpaceError(path, f"choice {values[i]!r} appears twice (as {a!r}); allowed: distinct values")
        if not isinstance(grid, bool):
            raise SpaceError(path, f"grid must be true or false; got {grid!r}")
        if prior is not None and not any(_same(_encode(prior), e) for e in encoded):
            raise SpaceError(path, f"prior {prior!r} is not one of the choices {values!r}; allowed: one of them")
        for name, value in (("path", path), ("choices", tuple(values)), ("grid", grid), ("when", _check_when(path, when)),
                            ("prior", prior)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_encoded", tuple(encoded))
        object.__setattr__(self, "_decoding", {e: v for e, v in zip(encoded, values) if not isinstance(v, _PRIMITIVE)})

    @property
    def is_finite(self) -> bool:
        return True

    def values(self) -> list[Any]:
        return copy.deepcopy(list(self.choices))

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        return self.decode(trial.suggest_categorical(self.path, list(self._encoded)))  # type: ignore[attr-defined]

    def encode(self, value: Any) -> Any:
        return _encode(value)

    def decode(self, raw: Any) -> Any:
        if isinstance(raw, str) and raw in self._decoding:  # type: ignore[attr-defined]
            return copy.deepcopy(self._decoding[raw])  # type: ignore[attr-defined]
        return raw

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"grid" if self.grid else "choice": copy.deepcopy(list(self.choices))}
        if self.when:
            spec["when"] = copy.deepcopy(dict(self.when))
        if self.prior is not None:
            spec["prior"] = copy.deepcopy(self.prior)
        return spec


def _encode(value: Any) -> Any:
    return value if isinstance(value, _PRIMITIVE) else json.dumps(value, sort_keys=True, separators=(",", ":"))


Param = Union[FloatParam, IntParam, ChoiceParam]
