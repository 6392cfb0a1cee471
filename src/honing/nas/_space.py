"""Architecture spaces: named decisions, each a list of choices.

An architecture is a plain dict ``{decision: choice}``. A layer-wise space has one decision per
layer and property (``op_0``, ``kernel_0``, ...); ``mobile_space`` builds one over the
``mobilenet`` blocks and ``mobile_blocks(arch)`` turns an architecture into the model's block
list. A strategy needs only what ``ArchSpace`` gives: a random architecture, the neighbours
of one (every architecture one decision away), and the choices of each decision.

Decisions can be idle: the kernel of a layer left out, the expansion of a block that is not an
inverted residual. A space's ``canonical(arch)`` sets idle decisions to their first choice, so
two architectures that build the same network have the same canonical form: the search trains it
once, and mutations and neighbours change the network, not only an idle decision.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from honing._core import ConfigError

Arch = dict[str, Any]
MOBILE_STRIDES = {1: 2, 3: 2}  # mobile_space's default: the second and the fourth layers halve the image


class ArchSpace:
    """``decisions``: name -> a non-empty list of choices (JSON values). ``canonical``: maps an
    architecture to the representative of those that build the same network (default: itself);
    ``distinct``: how many networks the space holds, when idle decisions make it fewer than ``size``."""

    def __init__(self, decisions: Mapping[str, Sequence[Any]], *, canonical: Callable[[Arch], Arch] | None = None,
                 distinct: int | None = None) -> None:
        if not isinstance(decisions, Mapping) or not decisions:
            raise ConfigError(f"invalid architecture space: got {decisions!r}; allowed: a non-empty mapping of "
                              "decision name -> list of choices")
        self.decisions: dict[str, list[Any]] = {}
        for name, choices in decisions.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"invalid decision name {name!r}; allowed: a non-empty string")
            if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence) or len(choices) == 0:
                raise ConfigError(f"invalid choices for decision {name!r}: got {choices!r}; allowed: a non-empty list")
            keys = [key(c) for c in choices]
            if len(set(keys)) != len(keys):
                raise ConfigError(f"invalid choices for decision {name!r}: got {list(choices)!r}; allowed: distinct values")
            self.decisions[name] = list(choices)
        self._canonical = canonical
        self.distinct = distinct

    def canonical(self, arch: Arch) -> Arch:
        """The representative of the architectures that build the same network as ``arch``."""
        return dict(arch) if self._canonical is None else self._canonical(dict(arch))

    def network_key(self, arch: Arch) -> str:
        """Equal for two architectures exactly when they build the same network."""
        return key(self.canonical(arch))

    @property
    def names(self) -> list[str]:
        return list(self.decisions)

    @property
    def size(self) -> int:
        n = 1
        for choices in self.decisions.values():
            n *= len(choices)
        return n

    def sample(self, rng: random.Random) -> Arch:
        return {name: rng.choice(choices) for name, choices in self.decisions.items()}

    def neighbours(self, arch: Arch) -> list[Arch]:
        """The architectures one decision away from ``arch`` that build another network (one per
        network: a change of an idle decision is none)."""
        out, seen = [], {self.network_key(arch)}
        for name, choices in self.decisions.items():
            for c in choices:
                if key(c) != key(arch[name]):
                    other = {**arch, name: c}
                    k = self.network_key(other)
                    if k not in seen:
                        seen.add(k)
                        out.append(other)
        return out

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """``arch`` with one decision (among those with a choice left) changed at random; drawn
        again (up to 50 times) while the change is to an idle decision only (the same network)."""
        free = [n for n, c in self.decisions.items() if len(c) > 1]
        if not free:
            return dict(arch)
        here = self.network_key(arch)
        for _ in range(50):
            name = rng.choice(free)
            others = [c for c in self.decisions[name] if key(c) != key(arch[name])]
            child = {**arch, name: rng.choice(others)}
            if self.network_key(child) != here:
                break
        return child

    def check(self, arch: Any) -> Arch:
        """``arch`` if it is an architecture of this space, else a ConfigError saying what is wrong."""
        if not isinstance(arch, Mapping) or set(arch) != set(self.decisions):
            got = sorted(arch) if isinstance(arch, Mapping) else arch
            raise ConfigError(f"invalid architecture: got {got!r}; allowed: one choice for each of "
                              f"{', '.join(self.decisions)}")
        for name, value in arch.items():
            if key(value) not in {key(c) for c in self.decisions[name]}:
                raise ConfigError(f"invalid architecture: {name} = {value!r}; allowed: {self.decisions[name]!r}")
        return dict(arch)


def key(value: Any) -> str:
    """A hashable, order-stable form of a choice or an architecture."""
    return json.dumps(value, sort_keys=True, default=str)


def mobile_space(*, blocks: int = 5, ops: Sequence[str] = ("ir", "dsconv", "conv"), kernels: Sequence[int] = (3, 5),
                 expand: Sequence[int] = (2, 4, 6), widths: Sequence[int] = (8, 16, 24, 32, 48),
                 se: Sequence[bool] = (False, True), strides: Mapping[int, int] | None = None,
                 skippable: bool = True, heads: Sequence[str] = (),
                 hidden: Sequence[int | None] = ()) -> ArchSpace:
    """A layer-wise space over ``mobilenet`` blocks: for each of ``blocks`` layers its op, kernel,
    expansion, output width and squeeze-excitation; ``strides`` fixes which layers halve the
    image (default: the second and the fourth); with ``skippable`` every layer but the first
    may be ``none`` (left out: the depth is searched too). ``heads``: a ``head`` decision among
    ``avg`` (global average pooling) and ``flatten`` (the last map flattened into the head).
    ``hidden``: a ``hidden`` decision among widths of a hidden layer in the head (None: a linear
    head)."""
    strides = dict(strides) if strides is not None else MOBILE_STRIDES
    decisions: dict[str, list[Any]] = {}
    for i in range(blocks):
        decisions[f"op_{i}"] = list(ops) + (["none"] if skippable and i > 0 and strides.get(i, 1) == 1 else [])
        decisions[f"kernel_{i}"] = list(kernels)
        decisions[f"expand_{i}"] = list(expand)
        decisions[f"width_{i}"] = list(widths)
        decisions[f"se_{i}"] = list(se)
    if heads:
        decisions["head"] = list(heads)
    if hidden:
        decisions["hidden"] = list(hidden)

    def canonical(arch: Arch) -> Arch:
        for i in range(blocks):
            op = arch[f"op_{i}"]
            idle = ("kernel", "expand", "width", "se") if op == "none" else ("expand",) if op != "ir" else ()
            for name in idle:
                arch[f"{name}_{i}"] = decisions[f"{name}_{i}"][0]
        return arch

    distinct = 1
    for i in range(blocks):  # per layer: the ops that use an expansion, those that do not, and none
        shape = len(kernels) * len(widths) * len(se)
        ops_i = decisions[f"op_{i}"]
        distinct *= shape * (len(expand) * ops_i.count("ir") + sum(o not in ("ir", "none") for o in ops_i)) \
            + ("none" in ops_i)
    distinct *= len(heads or [0]) * len(hidden or [0])
    return ArchSpace(decisions, canonical=canonical, distinct=distinct)


def mobile_blocks(arch: Arch, *, strides: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
    """The ``mobilenet`` block list of an architecture of ``mobile_space`` (``none`` layers left out)."""
    strides = dict(strides) if strides is not None else MOBILE_STRIDES
    out = []
    i = 0
    while f"op_{i}" in arch:
        op = arch[f"op_{i}"]
        if op != "none":
            block = {"op": op, "out": int(arch[f"width_{i}"]), "kernel": int(arch[f"kernel_{i}"]),
                     "stride": int(strides.get(i, 1)), "se": bool(arch[f"se_{i}"])}
            if op == "ir":
                block["expand"] = int(arch[f"expand_{i}"])
            out.append(block)
        i += 1
    return out


def cell_space(ops: Sequence[str] = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")) -> ArchSpace:
    """The ``cellnet`` cell space: one decision per edge of the 4-node DAG (``edge_0_1``, ...),
    each one of ``ops`` (5 ops: 15,625 cells, as NAS-Bench-201)."""
    from honing.models import CELL_EDGES

    return ArchSpace({f"edge_{a}_{b}": list(ops) for a, b in CELL_EDGES})


def cell_ops(arch: Arch) -> list[str]:
    """The ``cellnet`` ``cell`` argument of an architecture of ``cell_space``."""
    from honing.models import CELL_EDGES

    return [arch[f"edge_{a}_{b}"] for a, b in CELL_EDGES]
