"""The recipe schema: the ``tune``, ``evaluate`` and ``output`` sections and ``Recipe`` itself
(frozen pydantic models, every default filled). Checks across sections live in ``_checks.py``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from honing.recipe import _engine
from honing.recipe._apply import apply_params
from honing.recipe._checks import check_recipe
from honing.recipe._convert import translate
from honing.recipe._errors import Invalid, show, unknown_name
from honing.recipe._sections import (
    EXTRA_OBJECTIVES,
    DataSection,
    ModelSection,
    PositiveFloat,
    PositiveInt,
    Section,
    TrainingSection,
    check_log_key,
    direction_for,
)
from honing.recipe._compress import CompressSection
from honing.recipe._ensemble import EnsembleSection
from honing.recipe._nas import NasSection
from honing.recipe._robust import RobustSection
from honing.recipe._transfer import TransferSection
from honing.train import list_metrics

if TYPE_CHECKING:
    from honing.tune import SearchSpace


# ------------------------------------------------------------------------------------- tune

class ObjectiveSection(Section):
    metric: str
    """val_<metric>, val_loss, params, latency_ms, energy_j (the trial's training energy, joules) or robustness (PGD accuracy on validation rows; needs a robust section)"""
    direction: Literal["maximize", "minimize"]
    """maximize or minimize; null: from the metric"""

    @model_validator(mode="before")
    @classmethod
    def _default_direction(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("direction") is None and isinstance(data.get("metric"), str):
            data = {**data, "direction": direction_for(data["metric"])}
        return data

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        problem = check_log_key(value, allow_train=False, extra=EXTRA_OBJECTIVES)
        if problem:
            raise Invalid([((), problem)])
        return value


class SelectSection(Section):
    rule: Literal["best", "knee"] = "best"
    """best: the best trial on select.metric; knee: the Pareto trial with the best trade-off"""
    metric: str | None = None
    """the objective that rule best ranks by; null: the first"""


def _tune_names(kind: str) -> list[str]:
    from honing.tune import list_pruners, list_samplers

    return list_samplers() if kind == "sampler" else list_pruners()


def _named(value: Any, allowed: list[str], kind: str) -> Any:
    """A sampler/pruner: a name, or a mapping {name, **options} (options go to honing.tune)."""
    name = value.get("name") if isinstance(value, dict) else value
    loc: tuple[str, ...] = ("name",) if isinstance(value, dict) else ()
    if not isinstance(name, str):
        raise Invalid([(loc, f"got {show(value)}; allowed: a {kind} name ({', '.join(allowed)}) "
                             "or a mapping {name: ..., **options}")])
    if name not in allowed:
        raise Invalid([(loc, unknown_name(name, allowed, kind=kind))])
    if isinstance(value, dict) and len(value) > 1:  # options: checked by building it once
        _check_options(kind, value)
    return value


def _check_options(kind: str, value: dict[str, Any]) -> None:
    from honing._core import ConfigError
    from honing.tune import SearchSpace, create_pruner, create_sampler

    space = SearchSpace.from_spec({"x": {"choice": [0, 1]}})
    try:
        if kind == "sampler":
            create_sampler(value, seed=0, space=space)
        else:
            create_pruner(value, max_epochs=10)
    except ConfigError as err:
        key = next((k for k in value if k != "name" and k in str(err)), None)
        raise Invalid([((key,) if key else (), str(err))]) from None


class TuneSection(Section):
    n_trials: Annotated[int, Field(ge=1, le=1_000_000)] | None = 20
    """trials to run (a re-run extends the same study); null: until timeout"""
    timeout: PositiveFloat | None = None
    """stop starting trials after this many seconds"""
    sampler: Any = "auto"
    """how trials are proposed: grid, random, qmc, tpe, gp, cmaes, nsga2, auto (or {name, ...options})"""
    pruner: Any = "auto"
    """early stopping of weak trials: none, median, percentile, asha, hyperband, auto (or {name, ...options})"""
    metric: str | None = None
    """the validation value to optimize; null: val_accuracy (classification) or val_loss (regression)"""
    direction: Literal["maximize", "minimize"] | None = None
    """maximize or minimize; null: from the metric"""
    objectives: list[ObjectiveSection] | None = None
    """two or more {metric, direction} for a multi-objective search (metrics, params, latency_ms, energy_j, robustness)"""
    select: SelectSection = Field(default_factory=SelectSection)
    """how the final trial is picked from a Pareto front"""
    cv: Any = "auto"
    """auto: 5-fold cross-validation below 1000 train+validation rows, else the validation split; k (2..100): k-fold; null: the validation split"""
    final: Literal["retrain", "best_trial"] = "retrain"
    """retrain: train the chosen configuration on train+validation; best_trial: keep that trial's weights"""
    space: dict[str, Any] = Field(description="a mapping of dotted path -> distribution, e.g. "
                                  "{training.optimizer.lr: {float: [1.0e-4, 1.0e-1], log: true}}")
    """dotted recipe path -> distribution ({float: [lo, hi], log: true}, {int: ...}, {choice: [...]}, when: conditions)"""
    storage: str | None = None
    """the study's storage: a .journal file, sqlite:///file.db or postgresql://...; null: study.journal in the run folder"""
    warm_start: bool = True
    """start from the best configurations of earlier studies of the same model, metric and searched paths kept next to the run folder (.experience.jsonl in its parent); false: a cold start"""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Defaults that depend on other fields: sampler and pruner (several objectives: nsga2,
        no early stopping of trials), the direction of a metric, a grid's number of trials."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        objectives = data.get("objectives")
        several = isinstance(objectives, list) and len(objectives) > 1
        if data.get("sampler") is None:
            data["sampler"] = "nsga2" if several else "auto"
        if data.get("pruner") is None:
            data["pruner"] = "none" if several else "auto"
        if data.get("direction") is None and isinstance(data.get("metric"), str):
            data["direction"] = direction_for(data["metric"])
        sampler = data["sampler"].get("name") if isinstance(data["sampler"], dict) else data["sampler"]
        if sampler == "grid" and data.get("n_trials") is None and isinstance(data.get("space"), dict):
            size = _grid_size(data["space"])
            if size is not None:
                data["n_trials"] = size
        return data

    @field_validator("cv")
    @classmethod
    def _cv(cls, value: Any) -> Any:
        ok = value is None or value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= 100)
        if not ok:
            raise Invalid([((), f"got {show(value)}; allowed: 'auto' (5-fold below 1000 train+validation rows, "
                                 "else the validation split), an integer k >= 2 and <= 100 (k-fold), or null "
                                 "(the validation split)")])
        return value

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: Any) -> Any:
        return _named(value, _tune_names("sampler"), "sampler")

    @field_validator("pruner")
    @classmethod
    def _pruner(cls, value: Any) -> Any:
        return _named(value, _tune_names("pruner"), "pruner")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        problem = None if value is None else check_log_key(value, allow_train=False)
        if problem:
            raise Invalid([((), problem)])
        return value

    @field_validator("space")
    @classmethod
    def _space(cls, value: dict[str, Any]) -> dict[str, Any]:
        from honing._core import ConfigError
        from honing.tune import SearchSpace

        if not value:
            raise Invalid([((), "got an empty space; allowed: at least one parameter (or tune: null to train once)")])
        problems: list[tuple[tuple[str | int, ...], str]] = []

        def parse(part: dict[str, Any]) -> None:
            try:
                SearchSpace.from_spec(part, where="tune.space")
            except ConfigError as err:
                path = str(getattr(err, "path", "tune.space")).removeprefix("tune.space").removeprefix(".")
                problems.append(((path,) if path else (), str(getattr(err, "detail", err))))

        for key, entry in value.items():  # every entry's problem, then the whole (cycles, ...)
            parse({key: entry})
        if not problems:
            parse(value)
        if problems:
            raise Invalid(problems)
        return value

    @model_validator(mode="after")
    def _grid(self) -> TuneSection:
        from honing.tune import SearchSpace

        if self.sampler_name == "grid":
            space = SearchSpace.from_spec(self.space, where="tune.space")
            if not space.is_finite:
                bad = next(p for p in space if not p.is_finite)
                raise Invalid([(("space", bad.path), "a float without step has no grid values; allowed with "
                                                     "sampler grid: choice, grid, int, or float with step")])
        return self

    @property
    def sampler_name(self) -> str:
        return self.sampler["name"] if isinstance(self.sampler, dict) else self.sampler

    @property
    def pruner_name(self) -> str:
        return self.pruner["name"] if isinstance(self.pruner, dict) else self.pruner


def _grid_size(spec: dict[str, Any]) -> int | None:
    """The number of grid points (None for a bad or infinite space, reported elsewhere)."""
    import math

    from honing._core import ConfigError
    from honing.tune import SearchSpace

    try:
        space = SearchSpace.from_spec(spec)
        if not space.is_finite:
            return None
        if not any(p.when for p in space):  # a product: no need to walk a large grid
            return math.prod(len(p.values()) for p in space)
        return space.size
    except ConfigError:
        return None


# ------------------------------------------------------------------------- evaluate, output

class EvaluateSection(Section):
    metrics: list[str] | None = None
    """metrics computed on validation and test rows; null: the task's defaults (accuracy, balanced_accuracy, f1_macro, precision_macro / mse, mae, r2)"""
    baselines: bool = True
    """fit quick standard baselines on the same split and show them beside the model (majority/mean, linear, gradient boosting, TF-IDF)"""
    groups: list[str] | None = None
    """table columns to audit the final model by (fairness on the test rows: per-group metrics and demographic-parity and equalized-odds gaps for a classifier, per-group errors for regression); null: no audit"""
    group_inputs: bool = True
    """false: keep the group columns out of the model's inputs (audited, never learned from)"""

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str] | None) -> list[str] | None:
        from honing.train import METRICS

        if value is None:
            return None
        if not value:
            raise Invalid([((), "got []; allowed: null (the task's defaults) or a list of metric names")])
        bad = [((i,), unknown_name(m, list_metrics(), kind="metric")) for i, m in enumerate(value) if m not in METRICS]
        if bad:
            raise Invalid(bad)
        return value


class OutputSection(Section):
    dir: str | None = None
    """the run folder; null: runs/<name>"""
    report: bool = True
    """write report.html"""
    save_model: bool = True
    """write model/ (weights, preprocessing, recipe)"""


# ----------------------------------------------------------------------------------- recipe

# top-level sections plugins add: name -> their Section subclass (register_section)
PLUGIN_SECTIONS: dict[str, type[Section]] = {}


def register_section(name: str, section: type[Section]) -> None:
    """Add a top-level recipe section ``name`` checked by ``section`` (a ``honing.recipe.Section``
    subclass); a stage reads it as ``ctx.recipe.extensions[name]``."""
    from honing._core import ConfigError

    if name in Recipe.model_fields or name in PLUGIN_SECTIONS:
        raise ConfigError(f"invalid recipe section name {name!r}: it exists already; allowed: a new name")
    if not (isinstance(section, type) and issubclass(section, Section)):
        raise ConfigError(f"invalid recipe section {name!r}: got {section!r}; allowed: a honing.recipe.Section subclass")
    PLUGIN_SECTIONS[name] = section


class Recipe(Section):
    """A validated recipe. Build one with ``load_recipe`` / ``parse_recipe``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "honing-run"
    """names the run and the default output folder runs/<name> (letters, digits, _ . -)"""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    """seeds data splits, weights and the search; trial k trains with seed + k"""
    data: DataSection
    """where the rows come from and how they are prepared"""
    model: ModelSection | None = None
    """the architecture to build: a registry name and its arguments (or use transfer)"""
    transfer: TransferSection | None = None
    """fine-tune a pretrained network instead of building model (docs/transfer.md)"""
    training: TrainingSection = Field(default_factory=TrainingSection)
    """how one configuration trains"""
    nas: NasSection | None = None
    """search the model's architecture (blocks or cell) before the rest of the run (docs/nas.md)"""
    tune: TuneSection | None = None
    """the hyperparameter search; null trains the recipe once (honing train)"""
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    """metrics and baselines on the held-out test rows"""
    ensemble: EnsembleSection | None = None
    """combine the search's finished trials into one model, no further training (docs/ensemble.md)"""
    compress: CompressSection | None = None
    """compression steps run on the final model (docs/compress.md)"""
    robust: RobustSection | None = None
    """attack the final model on the test rows: robust accuracy over epsilons, corruptions (docs/robust.md)"""
    output: OutputSection = Field(default_factory=OutputSection)
    """what the run folder gets"""
    extensions: dict[str, Any] = Field(default_factory=dict, exclude=True)
    """sections that plugins registered (honing.recipe.register_section), typed, by name; written at the top level"""

    @model_validator(mode="before")
    @classmethod
    def _plugin_sections(cls, data: Any) -> Any:
        """Top-level keys that name a registered plugin section move into ``extensions``."""
        if not isinstance(data, dict) or not PLUGIN_SECTIONS:
            return data
        found = {k: v for k, v in data.items() if k in PLUGIN_SECTIONS}
        if not found:
            return data
        return {**{k: v for k, v in data.items() if k not in found}, "extensions": found}

    @model_validator(mode="after")
    def _across(self) -> Recipe:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        typed = {}
        for name, raw in self.extensions.items():
            if name not in PLUGIN_SECTIONS:
                problems.append(((name,), f"unknown section {name!r}; allowed: the sections of the recipe, or one a "
                                          "plugin registered"))
                continue
            model = PLUGIN_SECTIONS[name]
            try:
                typed[name] = raw if isinstance(raw, model) else model.model_validate({} if raw is None else raw)
            except ValidationError as err:
                problems.extend(((name, *loc), msg) for loc, msg in translate(err, model))
        object.__setattr__(self, "extensions", typed)
        problems += check_recipe(self)
        if problems:
            raise Invalid(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain JSON values, every default filled (plugin sections at the
        top level); ``parse_recipe(r.to_dict()) == r``."""
        out = self.model_dump(mode="json", by_alias=True)
        for name, section in self.extensions.items():
            out[name] = section.model_dump(mode="json", by_alias=True)
        return out

    def with_params(self, params: dict[str, Any]) -> Recipe:
        """A copy with dotted ``params`` set (``{"model.hidden": [64], "training.optimizer.lr":
        0.01}``), validated again; a RecipeError names any path whose value is not allowed."""
        return apply_params(self, params)

    def search_metric(self, task: str | None) -> str | None:
        """The validation metric the search optimizes (``honing.recipe`` decides it once)."""
        return _engine.search_metric(self, task)

    def directions(self, task: str) -> list[str]:
        """maximize/minimize, one per objective."""
        return _engine.search_directions(self, task)

    def monitor(self, task: str) -> str:
        """The logged value that picks the best epoch."""
        return _engine.monitor(self, task)

    def load_args(self) -> dict[str, Any]:
        """The keyword arguments of ``honing.data.load`` for this recipe's data."""
        return _engine.load_args(self)

    @functools.cached_property
    def space(self) -> SearchSpace | None:
        """``tune.space`` as a ``honing.tune.SearchSpace`` (None without a tune section)."""
        if self.tune is None:
            return None
        from honing.tune import SearchSpace

        return SearchSpace.from_spec(self.tune.space, where="tune.space")

