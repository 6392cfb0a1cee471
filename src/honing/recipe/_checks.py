"""Checks across sections, and the search space checked against the recipe it searches.

Each check returns ``(path, message)`` pairs; paths are tuples from the recipe's root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from honing.recipe import _paths
from honing.recipe._engine import search_metric
from honing.recipe._errors import Loc, show

if TYPE_CHECKING:
    from honing.recipe._schema import Recipe

Problems = list[tuple[Loc, str]]
_MAX_CANDIDATES = 12  # values per parameter tried against the schema


def check_recipe(recipe: Recipe) -> Problems:
    problems = (_check_model(recipe) + _check_task(recipe) + _check_logged(recipe) + _check_ensemble(recipe)
                + _check_nas(recipe) + _check_robust(recipe))
    if recipe.tune is None:
        es = recipe.training.early_stopping
        if es is not None and es.monitor.startswith("val_") and recipe.data.val_size == 0:
            problems.append((("training", "early_stopping", "monitor"),
                             f"got {es.monitor!r} with data.val_size 0 (no validation split); allowed: 'loss', "
                             "or a val_size > 0"))
        return problems
    problems += _check_tune(recipe)
    if not problems:
        problems += check_space(recipe)
    return problems


def _check_nas(recipe: Recipe) -> Problems:
    """A searched architecture is the model's: mobilenet blocks or a cellnet cell, known operations."""
    nas = recipe.nas
    if nas is None:
        return []
    model = {"mobile": "mobilenet", "cell": "cellnet"}[nas.space]
    if recipe.model is None or recipe.model.name != model:
        got = recipe.model.name if recipe.model is not None else "no model section"
        return [(("model", "name"), f"got {got!r} with nas.space {nas.space!r}; allowed: {model!r} (the space "
                                    f"searches that model's {'blocks' if nas.space == 'mobile' else 'cell'})")]
    from honing.models import CELL_OPS, MOBILE_OPS

    allowed = MOBILE_OPS if nas.space == "mobile" else CELL_OPS
    out: Problems = []
    for i, op in enumerate(nas.ops or []):
        if op not in allowed:
            out.append((("nas", "ops", i), f"got {op!r}; allowed: {', '.join(allowed)}"))
    if nas.ops is not None and not nas.ops:
        out.append((("nas", "ops"), f"got []; allowed: a non-empty list of {', '.join(allowed)}"))
    for i, layer in enumerate(nas.strides or []):
        if layer >= nas.blocks:
            out.append((("nas", "strides", i), f"got layer {layer}; allowed: a layer of the {nas.blocks} "
                                               f"(0 to {nas.blocks - 1})"))
    if nas.hidden is not None and (nas.space != "mobile" or not nas.hidden):
        why = "a non-empty list of widths (null: a linear head)" if nas.space == "mobile" else \
            "leave it out with nas.space 'cell' (cellnet's head is not searched)"
        out.append((("nas", "hidden"), f"got {nas.hidden!r}; allowed: {why}"))
    for i, k in enumerate(nas.kernels):
        if k % 2 == 0:
            out.append((("nas", "kernels", i), f"got {k}; allowed: an odd size (3, 5, 7)"))
    if not nas.objectives[0].startswith("val_"):
        out.append((("nas", "objectives", 0), f"got {nas.objectives[0]!r}; allowed: a validation metric first "
                                              "(val_accuracy, val_loss, ...), then params, flops, latency_ms and/or "
                                              "latency_ratio"))
    if len(set(nas.objectives)) != len(nas.objectives) or any(o.startswith("val_") for o in nas.objectives[1:]):
        out.append((("nas", "objectives"), f"got {nas.objectives}; allowed: one validation metric, then params, "
                                           "flops, latency_ms and/or latency_ratio, each once"))
    for name in nas.limits or {}:
        if name not in nas.objectives:
            out.append((("nas", "limits", name), f"got a limit on {name!r}, which is not measured; allowed: a limit on "
                                                 f"one of the objectives ({', '.join(nas.objectives[1:]) or 'none'}); "
                                                 f"add {name!r} to nas.objectives"))
    if "latency_ratio" in nas.objectives and nas.reference is None:
        out.append((("nas", "reference"), "missing: latency_ratio is timed against a reference network; allowed: a "
                                          "model section, e.g. {name: cnn, channels: [16, 32]} (the network to beat)"))
    if nas.reference is not None and "latency_ratio" not in nas.objectives:
        out.append((("nas", "reference"), "got a reference, but latency_ratio is not measured; allowed: add "
                                          "latency_ratio to nas.objectives, or leave reference out"))
    if nas.latency_runtime != "torch" and not {"latency_ms", "latency_ratio"} & set(nas.objectives):
        out.append((("nas", "latency_runtime"), f"got {nas.latency_runtime!r}, but latency is not measured; allowed: "
                                                "add latency_ms or latency_ratio to nas.objectives, or leave "
                                                "latency_runtime out"))
    if nas.promote and len(nas.objectives) > 1 and not nas.limits:
        out.append((("nas", "promote"), f"got {nas.promote} with objectives {nas.objectives} and no limits; allowed: "
                                        "0 (the front's point is chosen by nas.select), or nas.limits (the most "
                                        "accurate within them is chosen, and promotion re-ranks the best)"))
    if nas.promote == "auto" and nas.timeout is None:
        out.append((("nas", "promote"), "got 'auto' without nas.timeout; allowed: an integer 0..20, or auto with "
                                        "nas.timeout (auto promotes as many as fit in what the search left of it)"))
    if len(nas.objectives) > 1 and nas.strategy in ("local", "reinforce"):
        out.append((("nas", "strategy"), f"got {nas.strategy!r} with {len(nas.objectives)} objectives; allowed: "
                                         "random, evolution, tpe"))
    return out


def _check_robust(recipe: Recipe) -> Problems:
    """Attacks and adversarial training are for classifiers; the robustness objective needs the
    robust section (its epsilon and attack settings); L2 balls take pgd and apgd only."""
    out: Problems = []
    robust, adversarial = recipe.robust, recipe.training.adversarial
    if recipe.data.source.split(":")[0] in ("text-csv", "rotten-tomatoes"):
        for loc, what in ((("robust",), robust), (("training", "adversarial"), adversarial)):
            if what is not None:
                out.append((loc, "got text data; allowed: null (attacks move numeric inputs along their gradient; "
                                 "token ids have none)"))
    if recipe.data.task == "regression":
        for loc, what in ((("robust",), robust), (("training", "adversarial"), adversarial)):
            if what is not None:
                out.append((loc, "got a regression task; allowed: null (attacks measure a classifier's accuracy)"))
    if robust is not None and robust.norm == "l2":
        for i, name in enumerate(robust.attacks):
            if name in ("fgsm", "square"):
                out.append((("robust", "attacks", i), f"got {name!r} with norm l2; allowed: pgd, apgd ({name} is an "
                                                      "L-inf attack)"))
    objectives = recipe.tune.objectives if recipe.tune is not None else None
    for i, objective in enumerate(objectives or []):
        if objective.metric == "robustness" and robust is None:
            out.append((("tune", "objectives", i, "metric"), "got 'robustness' without a robust section; allowed: "
                        "a robust section (its first epsilon and its steps measure each trial)"))
    return out


def _check_ensemble(recipe: Recipe) -> Problems:
    """An ensemble combines a single-objective search's trials, each built from the model section."""
    if recipe.ensemble is None:
        return []
    if recipe.tune is None:
        return [(("ensemble",), "got an ensemble section without a tune section; allowed: null, or a tune section "
                                "(the ensemble combines the search's trials)")]
    if recipe.tune.objectives is not None:
        return [(("ensemble",), "got an ensemble section with tune.objectives; allowed: null (an ensemble combines "
                                "the trials of a single-objective search)")]
    if recipe.transfer is not None:
        return [(("ensemble",), "got an ensemble section with a transfer section; allowed: null (ensembles are built "
                                "from the model section's architectures; fine-tuned members are not supported yet)")]
    return []


def _check_model(recipe: Recipe) -> Problems:
    """A model section or a transfer section (which builds the model), not both."""
    if recipe.model is None and recipe.transfer is None:
        return [(("model",), "missing: a model section ({name: mlp, ...}) or a transfer section "
                             "({from: ..., strategy: ...}) is required")]
    if recipe.model is not None and recipe.transfer is not None:
        return [(("model",), f"got a model section ({recipe.model.name}) beside a transfer section; allowed: null "
                             "(the transfer section builds the model: its backbone from transfer.from and a new "
                             "head from transfer.head)")]
    text_encoder = recipe.transfer is not None and (
        recipe.transfer.source == "minilm" or recipe.transfer.source.startswith("hf:"))
    if recipe.data.is_text and not text_encoder:
        return [(("transfer", "from") if recipe.transfer is not None else ("transfer",),
                 f"data source {recipe.data.source!r} holds texts, which need a text encoder to tokenize and embed "
                 "them; allowed: transfer.from 'minilm' or 'hf:<folder>'")]
    if text_encoder and not recipe.data.is_text:
        return [(("transfer", "from"), f"got text encoder {recipe.transfer.source!r} with data source "
                                       f"{recipe.data.source!r}; allowed: a text source (text-csv:<path>, "
                                       "rotten-tomatoes)")]
    return []


def _monitored(recipe: Recipe) -> list[tuple[Loc, str]]:
    """Every validation log key the recipe names, with its path."""
    named: list[tuple[Loc, str]] = []
    if recipe.training.early_stopping is not None:
        named.append((("training", "early_stopping", "monitor"), recipe.training.early_stopping.monitor))
    if recipe.training.monitor:
        named.append((("training", "monitor"), recipe.training.monitor))
    if recipe.tune is not None:
        if recipe.tune.metric:
            named.append((("tune", "metric"), recipe.tune.metric))
        for i, o in enumerate(recipe.tune.objectives or []):
            named.append((("tune", "objectives", i, "metric"), o.metric))
        if recipe.tune.select.metric:
            named.append((("tune", "select", "metric"), recipe.tune.select.metric))
    return named


def _check_logged(recipe: Recipe) -> Problems:
    """With ``evaluate.metrics`` set, the Trainer logs val_loss and val_<those> only."""
    metrics = recipe.evaluate.metrics
    if metrics is None:
        return []
    allowed = ["val_loss", *(f"val_{m}" for m in metrics)]
    return [(loc, f"got {name!r}, which is not computed: evaluate.metrics is {metrics}; allowed: "
                  f"{', '.join(allowed)} (or add {name.removeprefix('val_')!r} to evaluate.metrics)")
            for loc, name in _monitored(recipe) if name.startswith("val_") and name not in allowed]


def _metric_task(metric: str) -> str | None:
    from honing.train import METRICS

    name = metric.removeprefix("val_")
    return METRICS.entry(name).meta.get("task") if name in METRICS else None


def _check_task(recipe: Recipe) -> Problems:
    """With ``data.task`` set, losses and metrics must be for that task."""
    from honing.train import LOSSES

    task = recipe.data.task
    if task is None:
        return []
    out: Problems = []
    loss = _paths.bag_name(recipe, ("training", "loss"))
    if loss is not None and LOSSES.entry(loss).meta.get("task") not in (None, task):
        at: Loc = ("training", "loss") + (("name",) if isinstance(recipe.training.loss, Mapping) else ())
        out.append((at, f"got {loss!r}, a {LOSSES.entry(loss).meta['task']} loss; allowed: a {task} loss "
                        f"(data.task is {task!r})"))
    named = _monitored(recipe) + [(("evaluate", "metrics", i), m) for i, m in enumerate(recipe.evaluate.metrics or [])]
    for loc, metric in named:
        other = _metric_task(metric)
        if other not in (None, task):
            out.append((loc, f"got {metric!r}, a {other} metric; allowed: a {task} metric (data.task is {task!r})"))
    return out


def _check_tune(recipe: Recipe) -> Problems:
    tune = recipe.tune
    if tune is None:
        return []
    out: Problems = []
    objectives = tune.objectives
    if objectives is not None:
        if len(objectives) < 2:
            out.append((("tune", "objectives"), f"got {len(objectives)} objective(s); allowed: at least 2 (for "
                                                "one, use tune.metric and tune.direction)"))
        val = [(i, o.metric) for i, o in enumerate(objectives) if o.metric.startswith("val_")]
        for i, metric in val[1:]:
            out.append((("tune", "objectives", i, "metric"),
                        f"got a second validation metric {metric!r}; allowed: one validation metric "
                        "(besides params, latency_ms, energy_j and robustness)"))
        if tune.metric and val and val[0][1] != tune.metric:
            out.append((("tune", "metric"), f"got {tune.metric!r} while the objectives measure {val[0][1]!r}; "
                                            "allowed: the same metric, or leave tune.metric out"))
        if tune.direction is not None and not tune.metric:
            out.append((("tune", "direction"), f"got {tune.direction!r} with tune.objectives; allowed: null (each "
                                               "objective has its own direction)"))
        if len(objectives) > 1 and tune.pruner_name != "none":
            out.append((("tune", "pruner"), f"got {tune.pruner_name!r} with {len(objectives)} objectives; allowed: "
                                            "'none' (early stopping of trials needs a single objective)"))
    if tune.select.rule == "knee" and (objectives is None or len(objectives) < 2):
        out.append((("tune", "select", "rule"), "got 'knee' with a single objective; allowed: 'best' (the knee "
                                                "of a Pareto front needs tune.objectives)"))
    if tune.select.metric is not None:
        allowed = [o.metric for o in objectives] if objectives else [tune.metric] if tune.metric else []
        if allowed and tune.select.metric not in allowed:
            out.append((("tune", "select", "metric"), f"got {tune.select.metric!r}; allowed: "
                                                      f"{', '.join(map(repr, allowed))} (the search's metrics)"))
    if isinstance(tune.cv, int) and tune.final == "best_trial":
        out.append((("tune", "final"), "got 'best_trial' with tune.cv; allowed: 'retrain' (cross-validation "
                                       "trains k models per trial, none of which is the final one)"))
    if tune.sampler_name == "grid":  # a grid is listed point by point: bounded before it is built
        from honing._core import ConfigError
        from honing.tune import SearchSpace

        try:
            SearchSpace.from_spec(tune.space, where="tune.space").size
        except ConfigError as err:
            out.append((("tune", "space"), str(err)))
    if tune.n_trials is None and tune.timeout is None and tune.sampler_name != "grid":
        out.append((("tune", "n_trials"), f"got null with sampler {tune.sampler_name!r} and no timeout; allowed: "
                                          "an integer >= 1 (null only with sampler grid or a timeout)"))
    searched_loss = [p for p in tune.space if p == "training.loss" or p.startswith("training.loss.")]
    metric = search_metric(recipe, recipe.data.task)
    if searched_loss and metric == "val_loss":
        out.append((("tune", "metric"), f"got 'val_loss' while tune.space searches {searched_loss[0]}: each trial's "
                                        "val_loss is its own loss, so trials with different losses cannot be "
                                        "compared; allowed: a metric that does not depend on the loss, e.g. "
                                        "val_mse or val_mae (regression), val_accuracy or val_f1_macro"))
    if not isinstance(tune.cv, int) and recipe.data.val_size == 0:
        out.append((("data", "val_size"), "got 0 with a search and no tune.cv; allowed: a val_size > 0 (trials "
                                          "are compared on the validation split) or tune.cv"))
    return out


# ------------------------------------------------------------------------------------ space

def check_space(recipe: Recipe) -> Problems:
    """Parse ``tune.space`` with ``honing.tune.SearchSpace``; check that every path (and every
    ``when`` reference) names a field, that a grid search has a grid, and that the values the
    space can take are allowed where they go."""
    if recipe.tune is None:
        return []
    from honing.tune import SearchSpace

    spec = recipe.tune.space
    space = SearchSpace.from_spec(spec, where="tune.space")  # parsed without error by TuneSection
    searched = _paths.searched_names(spec)
    out: Problems = []
    if len(recipe.tune.objectives or []) > 1 and recipe.tune.sampler_name == "cmaes":
        out.append((("tune", "sampler"), "got 'cmaes' with several objectives; allowed: grid, random, qmc, tpe, "
                                         "gp, nsga2 (CMA-ES optimizes one objective)"))
    for param in space:
        problem = _paths.path_problem(recipe, param.path, searched)
        if problem:
            out.append((("tune", "space", param.path), problem))
            continue
        refs = [(ref, _paths.path_problem(recipe, ref, searched)) for ref in param.when or {} if ref not in spec]
        bad = [(("tune", "space", param.path, "when", ref), problem) for ref, problem in refs if problem]
        out += bad or _check_active_names(recipe, spec, param) or _check_values(recipe, spec, param)
    return out


def _candidates(param: Any) -> list[Any]:
    values = list(param.choices) if hasattr(param, "choices") else [param.low, param.high]
    if len(values) > _MAX_CANDIDATES:
        values = values[: _MAX_CANDIDATES // 2] + values[-_MAX_CANDIDATES // 2:]
    return values


def _matches(actual: Any, expected: Any) -> bool:
    return actual in expected if isinstance(expected, list) else actual == expected


def _lookup(raw: Mapping[str, Any], path: str) -> Any:
    node: Any = raw
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _conditions(recipe: Recipe, spec: Mapping[str, Any], param: Any) -> dict[str, Any] | None:
    """Values that make ``param`` active: its ``when`` conditions on other parameters, and the
    bag name that takes it when the space searches that name (momentum -> sgd). None when a
    condition on a fixed field of the recipe never holds (the parameter is never used)."""
    out: dict[str, Any] = {}
    raw = recipe.to_dict()
    for ref, expected in (param.when or {}).items():
        if ref in spec:
            out[ref] = expected[0] if isinstance(expected, list) and expected else expected
        elif not _matches(_lookup(raw, ref), expected):
            return None
    found = _bag_of(param.path)
    if found is not None:
        where, kind, key = found
        current = _paths.bag_name(recipe, where)
        if current is None or key not in _paths.bag_keys(kind, {current}):
            for name in sorted(_paths.searched_names(spec).get(where, set())):
                if key in _paths.bag_keys(kind, {name}):
                    out.setdefault(".".join((*where, "name")), name)
                    break
    return out


def _bag_of(path: str) -> tuple[tuple[str, ...], str, str] | None:
    """(bag location, kind, key) when ``path`` is an argument in a bag, else None."""
    parts = tuple(path.split("."))
    kind = _paths.BAGS.get(parts[:-1])
    return (parts[:-1], kind, parts[-1]) if kind is not None and parts[-1] != "name" else None


def _check_active_names(recipe: Recipe, spec: Mapping[str, Any], param: Any) -> Problems:
    """An argument searched while its bag's name is searched too must suit every name it is
    used with: momentum with optimizer names [adamw, sgd] needs ``when: {...name: sgd}``."""
    found = _bag_of(param.path)
    if found is None:
        return []
    where, kind, key = found
    names = _paths.searched_names(spec).get(where, set())
    name_path, whole = ".".join((*where, "name")), ".".join(where)
    when = param.when or {}
    if name_path in when:
        expected = when[name_path]
        names = {n for n in names if _matches(n, expected)}
    elif whole in when:
        return []
    lacking = sorted(n for n in names if key not in _paths.bag_keys(kind, {n}))
    if not lacking:
        return []
    taking = sorted(n for n in names if n not in lacking)
    fix = f"add when: {{{name_path}: [{', '.join(taking)}]}}" if taking else f"remove it or search other {name_path}s"
    return [(("tune", "space", param.path), f"{param.path} is searched together with {name_path}, but "
                                            f"{', '.join(map(repr, lacking))} take(s) no argument {key!r}; "
                                            f"allowed: {fix}")]


def _check_values(recipe: Recipe, spec: Mapping[str, Any], param: Any) -> Problems:
    from honing.recipe._convert import translate
    from honing.recipe._errors import Invalid

    RecipeModel = type(recipe)  # the schema itself (this module sits below it)
    companions = _conditions(recipe, spec, param)
    if companions is None:
        return []
    base = recipe.to_dict()
    base["tune"] = base["ensemble"] = base["nas"] = None  # the sections that need a search are checked on their own
    for other in spec:  # other searched bag arguments: set by the space, not part of this check
        if other != param.path and other not in companions:
            _paths.unset_bag_key(base, other)
    for value in _candidates(param):
        raw = _copy(base)
        try:
            for path, v in {**companions, param.path: value}.items():
                _paths.set_path(raw, path, v)
            RecipeModel.model_validate(raw)
        except ValidationError as err:
            found = translate(err, RecipeModel)
            mine = [(loc, m) for loc, m in found if ".".join(map(str, loc)).startswith(param.path)] or found
            loc, message = mine[0]
            return [(("tune", "space", param.path), f"the value {show(value)} is not allowed at "
                                                    f"{'.'.join(map(str, loc))}: {message}")]
        except (KeyError, Invalid):
            return [(("tune", "space", param.path), f"the value {show(value)} cannot be set at {param.path}")]
    return []


def _copy(raw: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(raw)
