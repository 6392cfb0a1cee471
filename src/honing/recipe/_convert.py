"""Pydantic's validation errors -> (path, message) in the recipe's own words:
``got 'abc'; allowed: a number > 0 or null``."""

from __future__ import annotations

import typing
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from honing.recipe._errors import Invalid, Loc, show, unknown_key

_TYPE_ERRORS = {
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "finite_number", "bool_type",
    "bool_parsing", "string_type", "literal_error", "list_type", "dict_type", "model_type", "model_attributes_type",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "none_required",
}
_BY_TYPE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def translate(err: ValidationError, root: type[BaseModel]) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, Invalid):
            out.extend(((*loc, *sub), msg) for sub, msg in cause.items)
            continue
        out.append((loc, _message(e, loc, root)))
    return out


def _message(e: dict[str, Any], loc: Loc, root: type[BaseModel]) -> str:
    kind, value, ctx = e["type"], e.get("input"), e.get("ctx") or {}
    if kind == "missing":
        field = _field_at(root, loc)
        words = (field.description or describe(field.annotation, field.metadata)) if field is not None else ""
        allowed = f"; allowed: {words}" if words else ""
        return f"missing (this field is required){allowed}"
    if kind == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        allowed = list(owner.model_fields) if owner is not None else []
        return unknown_key(loc[-1], allowed)
    if kind == "invalid_key":
        return f"got the key {show(value)}; allowed: string keys"
    if kind == "string_pattern_mismatch":
        return f"got {show(value)}; allowed: letters, digits, '_', '.' and '-' (it names the output folder)"
    if kind == "too_short":
        return f"got {show(value)}; allowed: at least {ctx.get('min_length')} item(s)"
    if kind in _TYPE_ERRORS:
        field = _field_at(root, loc)
        if field is not None:
            return f"got {show(value)}; allowed: {describe(field.annotation, field.metadata)}"
        if kind in _BY_TYPE:
            return f"got {show(value)}; allowed: {_BY_TYPE[kind]}"
    message = str(e.get("msg", "")).removeprefix("Value error, ")
    return f"got {show(value)}; {message[:1].lower()}{message[1:]}"


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    cls: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if cls is None or part not in cls.model_fields:
            return None
        cls = _inner_model(cls.model_fields[part].annotation)
    return cls


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _field_at(root: type[BaseModel], loc: Loc) -> FieldInfo | None:
    """The field ``loc`` ends at (None for list items and unknown places)."""
    if not loc or isinstance(loc[-1], int):
        return None
    owner = _model_at(root, loc[:-1])
    return owner.model_fields.get(str(loc[-1])) if owner is not None else None


def describe(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A field type in words: ``Annotated[int, Field(ge=1)] | None`` -> 'an integer >= 1 or null'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = [m for a in args[1:] for m in (a.metadata if isinstance(a, FieldInfo) else [a])]
        return describe(args[0], [*metadata, *inner])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        words = [describe(a, metadata) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return ", ".join(repr(a) for a in args)
    if origin is dict:
        return "a mapping"
    if origin is list:
        return f"a list of {describe(args[0]).replace('a string', 'strings').replace('a mapping', 'mappings')}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        more = " and the arguments of what it names" if annotation.model_config.get("extra") == "allow" else ""
        return f"a mapping with keys {', '.join(annotation.model_fields)}{more}"
    base = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = []
    for m in metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sign} {getattr(m, attr)}")
    return f"{base} {' and '.join(bounds)}".rstrip()
