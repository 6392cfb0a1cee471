"""docs/recipe-fields.md is generated from the schema: every field documented, no drift."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from honing.recipe import Recipe, field_reference
from honing.recipe._compress import STEPS

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipe-fields.md"


def _models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [Recipe, *STEPS.values()]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for f in model.model_fields.values():
            for a in (f.annotation, *typing.get_args(f.annotation),
                      *(x for a in typing.get_args(f.annotation) for x in typing.get_args(a))):
                if isinstance(a, type) and issubclass(a, BaseModel):
                    todo.append(a)
    return seen


def test_every_field_of_every_section_has_a_meaning():
    missing = [f"{m.__name__}.{name}" for m in _models() for name, f in m.model_fields.items()
               if not (f.description or "").strip()]
    assert not missing, f"fields without a docstring in the schema: {missing}"
    assert len(_models()) >= 20


def test_the_reference_file_is_what_the_schema_generates():
    assert DOC.read_text() == field_reference(), "docs/recipe-fields.md is stale: run `make docs`"


def test_the_reference_names_every_field_path():
    text = field_reference()
    for path in ("data.target", "data.scale_target", "data.drop_columns", "data.test", "data.impute",
                 "training.class_weight", "tune.cv", "tune.objectives[].metric", "evaluate.baselines",
                 "transfer.lora.r", "compress[].export.tolerance", "output.save_model"):
        assert f"| `{path}` |" in text, path
