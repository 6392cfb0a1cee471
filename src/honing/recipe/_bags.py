"""Argument bags: sections whose keys are another object's keyword arguments.

``model`` (the model class), ``training.optimizer`` (the optimizer class), ``training.schedule``
(the schedule factory), ``training.loss`` (the loss class) and ``data.augment`` (the augment
keys). Keys are checked against the registry entry the bag names, value types against that
object's type hints, and values by building the object once on a tiny stand-in (a model on the
registry's example input shape, an optimizer on one parameter), so a bad value is reported at
its own path before any data is loaded.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from honing.data import create_augment, list_augmentations
from honing.models import MODELS, create_model, list_models
from honing.optim import (
    SCHEDULES,
    create_optimizer,
    create_schedule,
    get_optimizer_info,
    list_optimizers,
    list_schedules,
)
from honing.recipe._errors import Loc, show, unknown_key
from honing.train import LOSSES, create_loss, list_losses

# keys every bag of a kind accepts besides its object's own arguments (declared schema fields)
MODEL_FIELDS = ("name", "init", "gain")
OPTIMIZER_FIELDS = ("name", "lr", "weight_decay", "layer_decay")
SCHEDULE_FIELDS = ("name", "warmup_steps", "warmup_epochs", "warmup_start_factor")
LOSS_FIELDS = ("name",)
_SIZE_ARGS = ("self", "input_shape", "num_outputs")

Problems = list[tuple[Loc, str]]


def _kwarg_names(fn: Callable[..., Any], skip: Sequence[str] = ()) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds and n not in skip]


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # unresolvable annotations: no type checks, the value check still runs
        return {}


def allowed_keys(kind: str, name: str) -> list[str]:
    """Every key a ``kind`` bag naming ``name`` accepts (raises UnknownNameError for a bad name)."""
    if kind == "model":
        return sorted({*MODEL_FIELDS, *_kwarg_names(MODELS.get(name), _SIZE_ARGS)})
    if kind == "optimizer":
        own = _kwarg_names(get_optimizer_info(name).cls.__init__, ("self", "params"))
        return sorted({*OPTIMIZER_FIELDS, "no_decay", *own})
    if kind == "schedule":
        entry = SCHEDULES.entry(name)
        own = entry.meta.get("params") or [n for n, p in inspect.signature(entry.factory).parameters.items()
                                           if p.kind is p.KEYWORD_ONLY]
        return sorted({*SCHEDULE_FIELDS, *own})
    if kind == "loss":
        return sorted({*LOSS_FIELDS, *inspect.signature(LOSSES.get(name)).parameters})
    if kind == "augment":
        return list_augmentations()
    raise ValueError(f"unknown bag kind {kind!r}")


def registry_names(kind: str) -> list[str]:
    return {"model": list_models, "optimizer": list_optimizers, "schedule": list_schedules,
            "loss": list_losses}[kind]()


# ---------------------------------------------------------------------------------- value types

@functools.lru_cache(maxsize=256)
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))


def describe_type(hint: Any) -> str:
    """A type hint in words: ``float | None`` -> 'a number or null'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None) or hint is None:
        return "null"
    if origin in (typing.Union, types.UnionType):
        words = [describe_type(a) for a in args if getattr(a, "__module__", "").split(".")[0] != "torch"]
        return " or ".join(dict.fromkeys(words))
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values ({', '.join(describe_type(a) for a in args)})"
    if origin in (list, tuple, Sequence, typing.Sequence) or (origin is not None and _is_sequence(origin)):
        inner = describe_type(args[0]) if args else "values"
        return f"a list of {_plural(inner)}"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a mapping"
    if hint is Any:
        return "any value"
    return getattr(hint, "__name__", str(hint))


def _is_sequence(origin: Any) -> bool:
    try:
        return issubclass(origin, Sequence) and not issubclass(origin, str)
    except TypeError:
        return False


def _plural(words: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        words = words.replace(one, many)
    return words


def type_problems(fn: Callable[..., Any], values: Mapping[str, Any]) -> Problems:
    """Values that do not fit ``fn``'s type hints. Strings and booleans must fit exactly (no
    '0.5' -> 0.5 or true -> 1.0 coercion)."""
    hints = _hints(fn)
    out: Problems = []
    for key, value in values.items():
        hint = hints.get(key)
        if hint is None or hint is Any:
            continue
        try:
            adapter = _adapter(hint)
        except Exception:  # a hint pydantic cannot express
            continue
        try:
            adapter.validate_python(value, strict=isinstance(value, (str, bool)))
        except ValidationError:
            out.append(((key,), f"got {show(value)}; allowed: {describe_type(hint)}"))
    return out


# -------------------------------------------------------------------------------- value checks

def _key_in(message: str, keys: Sequence[str]) -> str | None:
    """The key a message is about: the one named first in it."""
    for words in (lambda k: k, lambda k: k[:-1] if k.endswith("s") else k):  # betas: "Invalid beta ..."
        best: tuple[int, str] | None = None
        for key in keys:
            m = re.search(rf"(?<![\w]){re.escape(words(key))}(?![\w])", message, re.I)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), key)
        if best:
            return best[1]
    return None


def _attempt(build: Callable[[], Any], keys: Sequence[str], *, more: Sequence[str] = (),
             fallback: Loc = ()) -> Problems:
    """Build the object once; an error is placed at the key it names (given keys first, then
    ``more``: keys that were not given, e.g. a required one)."""
    try:
        build()
    except (ValueError, TypeError, KeyError) as err:  # ConfigError, UnknownNameError, torch's own
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        key = _key_in(message, keys) or _key_in(message, [k for k in more if k not in keys and k != "name"])
        return [((key,) if key else fallback, message)]
    return []


def check_model(spec: Mapping[str, Any]) -> Problems:
    """``spec`` holds name, init, gain and the model's own arguments (name already known)."""
    entry = MODELS.entry(spec["name"])
    allowed = allowed_keys("model", entry.name)
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    owner = f"model {entry.name!r}"
    bad = [((k,), unknown_key(k, allowed, what="argument", owner=owner)) for k in kwargs if k not in allowed]
    bad += type_problems(entry.factory, {k: v for k, v in kwargs.items() if k != "init" and k in allowed})
    if bad:
        return bad
    shape = entry.meta.get("example_input_shape")
    if shape is None:
        return []
    problems = _attempt(lambda: create_model(entry.name, input_shape=shape, num_outputs=2, **kwargs), list(kwargs))
    # an error about the stand-in input (not about an argument) says nothing about the recipe
    return [p for p in problems if p[0] and "input" not in p[1]]


def check_optimizer(spec: Mapping[str, Any]) -> Problems:
    import torch

    info = get_optimizer_info(spec["name"])
    allowed = allowed_keys("optimizer", info.name)
    owner = f"optimizer {info.name!r}"
    bad = [((k,), unknown_key(k, allowed, what="argument", owner=owner)) for k in spec if k not in allowed]
    own = {k: v for k, v in spec.items() if k not in OPTIMIZER_FIELDS and k in allowed}
    bad += type_problems(info.cls, {k: v for k, v in own.items() if k != "no_decay"})
    if bad:
        return bad
    if info.single_group and spec.get("layer_decay") is not None:
        return [(("layer_decay",), f"got {show(spec['layer_decay'])}; allowed: null (optimizer {info.name!r} "
                                   "takes one parameter group, so no layer-wise decay)")]
    own.pop("no_decay", None)
    param = torch.nn.Parameter(torch.zeros(2))
    return _attempt(lambda: create_optimizer([param], info.name, lr=spec.get("lr"),
                                             weight_decay=spec.get("weight_decay", 0.0), **own),
                    ["lr", "weight_decay", *own], more=allowed)


def check_schedule(spec: Mapping[str, Any], *, epochs: int, lr: float) -> Problems:
    import torch

    entry = SCHEDULES.entry(spec["name"])
    allowed = allowed_keys("schedule", entry.name)
    owner = f"schedule {entry.name!r}"
    bad = [((k,), unknown_key(k, allowed, what="argument", owner=owner)) for k in spec if k not in allowed]
    kwargs = {k: v for k, v in spec.items() if k != "name" and v is not None and k in allowed}
    bad += type_problems(entry.factory, {k: v for k, v in kwargs.items() if k not in SCHEDULE_FIELDS})
    if bad:
        return bad
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    # steps per epoch depend on the data; a large stand-in checks every value but the warm-up length
    return _attempt(lambda: create_schedule(opt, entry.name, epochs=epochs, steps_per_epoch=10_000, **kwargs),
                    list(kwargs), more=allowed)


def check_loss(spec: str | Mapping[str, Any]) -> Problems:
    """A loss name, or a mapping ``{name, **kwargs}``; paths relative to training.loss."""
    name = spec if isinstance(spec, str) else spec["name"]
    kwargs = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}
    factory = LOSSES.get(name)
    allowed = allowed_keys("loss", name)
    bad = [((k,), unknown_key(k, allowed, what="argument", owner=f"loss {name!r}")) for k in kwargs if k not in allowed]
    kwargs = {k: v for k, v in kwargs.items() if k in allowed}
    if kwargs.get("weight") == "balanced":  # filled from the training labels by the pipeline
        kwargs.pop("weight")
    bad += type_problems(factory, kwargs)
    if bad:
        return bad
    return _attempt(lambda: create_loss(name, **kwargs), list(kwargs), more=allowed)


def check_augment(spec: Any) -> Problems:
    """``data.augment``: a mapping of augment keys (or the list form of ``create_augment``)."""
    if isinstance(spec, Mapping):
        allowed = list_augmentations()
        bad = [((k,), unknown_key(k, allowed, what="augmentation")) for k in spec if k not in allowed]
        if bad:
            return bad
        keys: list[str] = [str(k) for k in spec]
    elif isinstance(spec, list):
        keys = []
    else:
        return [((), f"got {show(spec)}; allowed: null or a mapping of {', '.join(list_augmentations())}")]
    return _attempt(lambda: create_augment(spec, num_classes=2, seed=0), keys)
