"""Search spaces: parameters visited in dependency order, conditions, grids, the recipe form.

A parameter is active only when every ``when`` condition holds: the referenced value (another
parameter of the space, or a fixed field of the base configuration) equals the expected value
or is one of a list of allowed values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from honing._core import ConfigError
from honing.tune._params import ChoiceParam, FloatParam, IntParam, Param, SpaceError, matches, check_path

if TYPE_CHECKING:
    import optuna

__all__ = ["ChoiceParam", "FloatParam", "IntParam", "Param", "SearchSpace", "SpaceError"]

_KINDS = ("float", "int", "choice", "grid")
_MISSING = object()


class SearchSpace:
    """Parameters over dotted paths; ``suggest`` and ``grid`` visit them in dependency order."""

    def __init__(self, params: Iterable[Param]) -> None:
        self.params: tuple[Param, ...] = tuple(params)
        by_path: dict[str, Param] = {}
        for p in self.params:
            if not isinstance(p, (FloatParam, IntParam, ChoiceParam)):
                raise ConfigError(f"invalid search parameter: got {p!r}; allowed: FloatParam, IntParam, ChoiceParam")
            if p.path in by_path:
                raise SpaceError(p.path, "the path appears twice; allowed: one distribution per path")
            by_path[p.path] = p
        self._by_path = by_path
        self._order = self._dependency_order()

    def _dependency_order(self) -> tuple[Param, ...]:
        order: list[Param] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(p: Param, chain: list[str]) -> None:
            if state.get(p.path) == 2:
                return
            if state.get(p.path) == 1:
                cycle = chain[chain.index(p.path):] + [p.path]
                raise SpaceError(p.path, f"when conditions form a cycle: {' -> '.join(cycle)}; allowed: no cycles")
            state[p.path] = 1
            for ref in p.when or {}:
                if ref in self._by_path:
                    visit(self._by_path[ref], chain + [p.path])
            state[p.path] = 2
            order.append(p)

        for p in self.params:
            visit(p, [])
        return tuple(order)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, where: str = "tune.space") -> SearchSpace:
        """Parse the recipe form ``{path: {float|int|choice|grid: ..., log, step, when, prior}}``."""
        if not isinstance(spec, Mapping) or not spec:
            raise SpaceError(where, f"expected a mapping of path -> distribution; got {spec!r}")
        params = []
        for path, entry in spec.items():
            try:
                params.append(_parse_entry(path, entry))
            except SpaceError as e:
                raise SpaceError(f"{where}.{e.path}", e.detail) from None
        try:
            return cls(params)
        except SpaceError as e:
            raise SpaceError(f"{where}.{e.path}", e.detail) from None

    def to_spec(self) -> dict[str, Any]:
        return {p.path: p.to_spec() for p in self.params}

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.params]

    def __getitem__(self, path: str) -> Param:
        return self._by_path[path]

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.params == other.params

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.params)!r})"

    def _active(self, p: Param, values: Mapping[str, Any], base: Mapping[str, Any] | None) -> bool:
        """``base=None`` means 'unknown': conditions on fields outside the space count as met."""
        for ref, expected in (p.when or {}).items():
            if ref in self._by_path:
                if ref not in values:
                    return False
                actual = values[ref]
            elif base is None:
                continue
            else:
                actual = _lookup(base, ref)
                if actual is _MISSING:
                    raise ConfigError(
                        f"search parameter {p.path}: its condition refers to {ref!r}, which is neither a parameter "
                        "of the space nor a field of the base configuration; allowed: "
                        f"{', '.join(self.paths)} or a field of the configuration")
            if not matches(actual, expected):
                return False
        return True

    def suggest(self, trial: optuna.trial.BaseTrial, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Ask ``trial`` for every active parameter; returns ``{path: value}`` in dependency order."""
        base = {} if base is None else base
        values: dict[str, Any] = {}
        for p in self._order:
            if self._active(p, values, base):
                values[p.path] = p.suggest(trial)
        return values

    def decode(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's stored params (choice values as JSON text) -> the real values."""
        return {k: (self._by_path[k].decode(v) if k in self._by_path else v) for k, v in raw.items()}

    def encode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of ``decode`` (e.g. to enqueue a known configuration)."""
        out = {}
        for k, v in params.items():
            p = self._by_path.get(k)
            out[k] = p.encode(v) if isinstance(p, ChoiceParam) else v
        return out

    def centre(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The base configuration's own values at the searched paths (the search centre), encoded
        as Optuna stores them; paths the base does not set are left out."""
        found = {p.path: v for p in self.params if (v := _lookup(base, p.path)) is not _MISSING and v is not None}
        return self.encode(found)

    def priors(self) -> dict[str, Any]:
        """``{path: prior}`` of the parameters whose expected best value the user marked
        (``prior:`` in the recipe), encoded as Optuna stores them."""
        return self.encode({p.path: p.prior for p in self.params if p.prior is not None})

    @property
    def is_finite(self) -> bool:
        return all(p.is_finite for p in self.params)

    def check_finite(self) -> None:
        """ConfigError naming the first parameter without a finite set of values."""
        for p in self.params:
            if not p.is_finite:
                p.values()  # raises, naming the parameter

    def grid(self, base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every combination of values that respects the conditions (ConfigError if not finite)."""
        self._check_grid_size()
        return list(self._walk({} if base is None else base))

    def _check_grid_size(self) -> None:
        """ConfigError when the grid is infinite or has more than MAX_GRID_VALUES points (counted
        as the product of the parameters' values, an upper bound with conditions)."""
        from honing.tune._params import MAX_GRID_VALUES

        self.check_finite()
        total = 1
        for p in self.params:
            total *= len(p.values())
            if total > MAX_GRID_VALUES:
                raise ConfigError(f"invalid search space: the grid has more than {MAX_GRID_VALUES:,} points "
                                  f"({', '.join(self.paths)}); allowed: at most {MAX_GRID_VALUES:,} (fewer values, "
                                  "or another sampler than grid)")

    @property
    def size(self) -> int | None:
        """Number of grid points (None if not finite). Conditions on fields outside the space are
        counted as met, so with such conditions this is an upper bound of ``len(grid(base))``."""
        if not self.is_finite:
            return None
        self._check_grid_size()
        return sum(1 for _ in self._walk(None))

    def _walk(self, base: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
        order = self._order
        values: dict[str, Any] = {}

        def rec(i: int) -> Iterator[dict[str, Any]]:
            if i == len(order):
                yield copy.deepcopy(values)
                return
            p = order[i]
            if not self._active(p, values, base):
                yield from rec(i + 1)
                return
            for v in p.values():
                values[p.path] = v
                yield from rec(i + 1)
            del values[p.path]

        return rec(0)


def _lookup(base: Mapping[str, Any], path: str) -> Any:
    if path in base:
        return base[path]
    node: Any = base
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _parse_entry(path: Any, entry: Any) -> Param:
    path = check_path(path)
    if not isinstance(entry, Mapping):
        raise SpaceError(path, f"expected a distribution mapping like {{float: [low, high]}}; got {entry!r}; "
                               f"allowed kinds: {', '.join(_KINDS)}")
    kinds = [k for k in _KINDS if k in entry]
    if not kinds:
        raise SpaceError(path, f"no distribution kind in {dict(entry)!r}; allowed: exactly one of {', '.join(_KINDS)}")
    if len(kinds) > 1:
        raise SpaceError(path, f"two kinds in one entry ({', '.join(kinds)}); allowed: exactly one of {', '.join(_KINDS)}")
    kind = kinds[0]
    allowed = [kind, "log", "step", "when", "prior"] if kind in ("float", "int") else [kind, "when", "prior"]
    for key in entry:
        if key not in allowed:
            raise SpaceError(path, f"unknown key {key!r} in a {kind} distribution; allowed: {', '.join(allowed)}")
    when, prior = entry.get("when"), entry.get("prior")
    if kind in ("choice", "grid"):
        return ChoiceParam(path, _as_list(path, kind, entry[kind]), when=when, grid=kind == "grid", prior=prior)
    bounds = entry[kind]
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        raise SpaceError(path, f"{kind} needs [low, high]; got {bounds!r}")
    log = entry.get("log", False)
    if kind == "float":
        return FloatParam(path, bounds[0], bounds[1], log=log, step=entry.get("step"), when=when, prior=prior)
    step = entry.get("step", 1)
    return IntParam(path, bounds[0], bounds[1], log=log, step=1 if step is None else step, when=when, prior=prior)


def _as_list(path: str, kind: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise SpaceError(path, f"{kind} needs a list of values; got {value!r}")
    return list(value)
