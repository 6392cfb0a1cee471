"""The recipe field reference (docs/recipe-fields.md), generated from the schema itself, so the
documentation cannot drift from the code: every section, every field, its type, default,
allowed values and one line of meaning (the field's docstring in the schema)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

_BAGS = {  # sections whose other keys come from a registry
    "model": "model", "training.optimizer": "optimizer", "training.schedule": "schedule",
}
_HEADER = """# Recipe field reference

Generated from the recipe schema (`honing.recipe.field_reference()`; a test fails when this file
and the schema differ: regenerate it with `make docs`). Paths are dotted as in `tune.space`;
`[]` marks a list item. The guide with examples is [recipe.md](recipe.md).
"""


def field_reference() -> str:
    """The Markdown reference of every recipe field."""
    from honing.recipe._compress import STEPS, CompressSection
    from honing.recipe._schema import Recipe

    out = [_HEADER]
    sections: list[tuple[str, type[BaseModel]]] = []
    top = [(name, f) for name, f in Recipe.model_fields.items() if name != "extensions"]  # plugins' own
    out.append("\n## Top level\n")
    out.append(_table("", [(f.alias or n, f) for n, f in top]))
    for name, f in top:
        model = _model_of(f.annotation)
        if model is not None:
            sections.append((f.alias or name, model))
    seen: set[str] = set()
    while sections:
        path, model = sections.pop(0)
        if path in seen:
            continue
        seen.add(path)
        fields = [(f.alias or n, f) for n, f in model.model_fields.items()]
        if model is CompressSection:
            fields = [(n, f) for n, f in fields if n != "steps"]
        out.append(f"\n## `{path}`\n")
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        if doc and not doc.startswith("A validated recipe"):
            out.append(doc + "\n")
        if path in _BAGS:
            out.append(f"Other keys are the arguments of the {_BAGS[path]} it names (checked against its "
                       "registry entry).\n")
        if model is CompressSection:
            out.append("A list of steps, run in order; each is a mapping of one step name to its options: "
                       + ", ".join(f"`{s}`" for s in STEPS) + ". (`compress: [...]` is short for "
                       "`compress: {steps: [...]}`.)\n")
        out.append(_table(path, fields))
        nested = []
        for name, f in fields:
            sub = _model_of(f.annotation)
            if sub is not None:
                nested.append((f"{path}.{name}", sub))
            item = _item_model_of(f.annotation)
            if item is not None:
                nested.append((f"{path}.{name}[]", item))
        sections[:0] = nested
        if model is CompressSection:
            sections[len(nested):len(nested)] = [(f"compress[].{s}", m) for s, m in STEPS.items()]
    return "\n".join(out).rstrip() + "\n"


def _table(path: str, fields: list[tuple[str, Any]]) -> str:
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, f in fields:
        full = f"{path}.{name}" if path else name
        rows.append(f"| `{full}` | {_type(f.annotation, f.metadata)} | {_default(f)} | {_cell(f.description or '')} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(f: Any) -> str:
    if f.is_required():
        return "required"
    value = f.default_factory() if f.default is PydanticUndefined and f.default_factory else f.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    return _cell(f"`{value}`")


def _bounds(metadata: list[Any]) -> str:
    parts = []
    flat: list[Any] = []
    for m in metadata:
        flat += list(getattr(m, "metadata", [])) if type(m).__name__ == "FieldInfo" else [m]
    for m in flat:
        for kind, sym in ((Ge, ">="), (Gt, ">"), (Le, "<="), (Lt, "<")):
            if isinstance(m, kind):
                parts.append(f"{sym} {_num(getattr(m, next(iter(kind.__dataclass_fields__))))}")
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None and not isinstance(m, (Ge, Gt, Le, Lt)):
                parts.append(f"{sym} {_num(v)}")
    return ", ".join(parts)


def _num(v: Any) -> str:
    if isinstance(v, int) and v >= 1 << 20 and (v & (v - 1)) == 0:
        return f"2^{v.bit_length() - 1}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _type(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A readable type: literals as their values, bounds from the field's constraints."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], list(args[1:]))
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        text = " or ".join(parts) + (" or null" if type(None) in args else "")
        bounds = _bounds(metadata or [])
        return f"{text} ({bounds})" if bounds else text
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        inner = _type(args[0]) if args else "any"
        return f"list of {inner}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    name = {int: "integer", float: "number", str: "string", bool: "boolean"}.get(annotation)
    if name is None:
        name = "any" if annotation is Any else getattr(annotation, "__name__", str(annotation))
    bounds = _bounds(metadata or [])
    return f"{name} ({bounds})" if bounds else name


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model of a field (``X`` or ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in typing.get_args(annotation):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _item_model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model of a list field's items (``list[X]`` or ``list[X] | None``), else None."""
    for a in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(a) is list:
            return _model_of(typing.get_args(a)[0]) if typing.get_args(a) else None
    return None
