"""Recipes: the YAML file ``honing run`` takes, as a validated, frozen pydantic model.

The only place YAML is read (``yaml.SafeLoader`` only).

```python
recipe = load_recipe("recipe.yaml")          # RecipeError: every problem with its path and line
recipe.to_dict()                             # resolved, JSON-able, every default filled
recipe.with_params({"training.optimizer.lr": 0.01, "model.hidden": [64]})   # validated again
recipe.space                                 # honing.tune.SearchSpace | None
validate_recipe("recipe.yaml")               # ["recipe.yaml:12: training.optimizer.lr: got 'abc'; ..."]
```
"""

from __future__ import annotations

from honing.recipe._compress import CompressSection, compress_step_options, register_step_options
from honing.recipe._engine import load_args
from honing.recipe._errors import Problem, RecipeError
from honing.recipe._example import example_recipe, list_examples
from honing.recipe._load import field_line, load_recipe, parse_recipe, validate_recipe
from honing.recipe._reference import field_reference
from honing.recipe._schema import (
    EvaluateSection,
    ObjectiveSection,
    OutputSection,
    Recipe,
    SelectSection,
    TuneSection,
    register_section,
)
from honing.recipe._sections import (
    DataSection,
    Section,
    EarlyStoppingSection,
    ModelSection,
    OptimizerSection,
    ScheduleSection,
    TrainingSection,
)

__all__ = [
    "CompressSection",
    "DataSection",
    "EarlyStoppingSection",
    "EvaluateSection",
    "ModelSection",
    "ObjectiveSection",
    "OptimizerSection",
    "OutputSection",
    "Problem",
    "Recipe",
    "RecipeError",
    "ScheduleSection",
    "Section",
    "SelectSection",
    "TrainingSection",
    "TuneSection",
    "compress_step_options",
    "example_recipe",
    "field_line",
    "field_reference",
    "list_examples",
    "load_args",
    "load_recipe",
    "parse_recipe",
    "register_section",
    "register_step_options",
    "validate_recipe",
]
