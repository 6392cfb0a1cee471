"""Dotted paths into a recipe: setting them (``with_params``) and checking that a search-space
path names a field that exists (in the schema, or in an argument bag of the recipe)."""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from honing.recipe import _bags

# argument bags by location, and the kind of registry entry their ``name`` picks
BAGS: dict[tuple[str, ...], str] = {
    ("model",): "model",
    ("training", "optimizer"): "optimizer",
    ("training", "schedule"): "schedule",
    ("training", "loss"): "loss",
    ("data", "augment"): "augment",
}
_BAG_FIELDS = {"model": _bags.MODEL_FIELDS, "optimizer": _bags.OPTIMIZER_FIELDS,
               "schedule": _bags.SCHEDULE_FIELDS, "loss": _bags.LOSS_FIELDS, "augment": ()}


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``"training.optimizer.lr"``, ``"model.hidden.0"``) in a plain nested dict,
    making missing or null mappings on the way (a bare loss name becomes ``{name: ...}``)."""
    parts = path.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else (
            node.get(part) if isinstance(node, dict) else None)
        if isinstance(nxt, str) and tuple(parts[: i + 1]) in BAGS:
            nxt = {"name": nxt}
        elif not isinstance(nxt, (dict, list)):
            nxt = {}
        if isinstance(node, list):
            node[int(part)] = nxt
        elif isinstance(node, dict):
            node[part] = nxt
        else:
            raise KeyError(path)
        node = nxt
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = copy.deepcopy(value)
    elif isinstance(node, dict):
        node[last] = copy.deepcopy(value)
    else:
        raise KeyError(path)


def unset_bag_key(raw: dict[str, Any], path: str) -> None:
    """Remove ``path`` from ``raw`` when it is an argument in a bag (``model.hidden``)."""
    parts = tuple(path.split("."))
    if parts[:-1] not in BAGS or parts[-1] == "name":
        return
    node: Any = raw
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] not in _BAG_FIELDS[BAGS[parts[:-1]]]:
        node.pop(parts[-1], None)


def _section_class(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (through ``X | None``), else None (a plain value)."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def bag_name(recipe: Any, where: tuple[str, ...]) -> str | None:
    """The registry name the bag at ``where`` holds in ``recipe`` (None when the bag is null)."""
    node: Any = recipe
    for part in where:
        node = getattr(node, part, None)
    if node is None:
        return None
    if isinstance(node, str):
        return node
    if isinstance(node, Mapping):
        name = node.get("name")
        return name if isinstance(name, str) else None
    return getattr(node, "name", None)


def searched_names(spec: Mapping[str, Any]) -> dict[tuple[str, ...], set[str]]:
    """Registry names a space tries per bag (``training.optimizer.name: {choice: [adamw, sgd]}``,
    or the whole bag searched: ``training.loss: {choice: [mse, {name: huber, delta: 2}]}``)."""
    out: dict[tuple[str, ...], set[str]] = {}
    for where in BAGS:
        for path, whole in ((".".join((*where, "name")), False), (".".join(where), True)):
            entry = spec.get(path)
            if not isinstance(entry, Mapping):
                continue
            values = entry.get("choice", entry.get("grid"))
            for v in values if isinstance(values, list) else []:
                name = v.get("name") if whole and isinstance(v, Mapping) else v
                if isinstance(name, str):
                    out.setdefault(where, set()).add(name)
    return out


def bag_keys(kind: str, names: set[str]) -> set[str]:
    keys = set(_BAG_FIELDS[kind]) | (set(_bags.list_augmentations()) if kind == "augment" else set())
    for name in names:
        try:
            keys |= set(_bags.allowed_keys(kind, name))
        except KeyError:  # an unknown name is reported where it is written
            pass
    return keys


def path_problem(recipe: Any, path: str, searched: dict[tuple[str, ...], set[str]]) -> str | None:
    """None if ``path`` names a field of the schema or a key of an argument bag, else why not
    (``recipe``: a validated Recipe; its class is the schema walked)."""
    Recipe = type(recipe)
    parts = tuple(path.split("."))
    if parts[0] == "tune":
        return (f"unknown path {path!r}: the tune section cannot be searched; allowed: paths into "
                f"{', '.join(f for f in Recipe.model_fields if f != 'tune')}")
    cls: type[BaseModel] | None = Recipe
    for i, part in enumerate(parts):
        here = parts[:i]
        if here in BAGS:
            kind = BAGS[here]
            names = set(searched.get(here, set()))
            current = bag_name(recipe, here)
            if current is not None:
                names.add(current)
            if part not in bag_keys(kind, names):
                where = ".".join(here)
                if not names and kind != "augment":
                    return (f"unknown path {path!r}: {where} is null, so it has no argument {part!r}; "
                            f"allowed: set {where}.name (or search it) first")
                about = f" ({', '.join(sorted(names))})" if names else ""
                return _unknown(path, here, part, f"{where}{about}", bag_keys(kind, names))
            if i < len(parts) - 1:
                return f"unknown path {path!r}: {'.'.join(parts[: i + 1])} is one value; search it as a whole"
            return None
        if cls is None:
            return f"unknown path {path!r}: {'.'.join(here)} is one value, not a section; search it as a whole"
        fields = {(info.alias or name): info for name, info in cls.model_fields.items()}  # transfer.from
        if part not in fields:
            section = ".".join(here) or "the recipe"
            return _unknown(path, here, part, section, [f for f in fields if here or f != "tune"])
        cls = _section_class(fields[part].annotation)
    return None


def _unknown(path: str, here: tuple[str, ...], part: str, section: str, allowed: Any) -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(part, allowed, n=2, cutoff=0.6)
    prefix = "".join(f"{h}." for h in here)
    hint = f" (did you mean {', '.join(repr(prefix + c) for c in close)}?)" if close else ""
    return f"unknown path {path!r}{hint}; {section} allows: {', '.join(allowed)}"
