"""``honing refit``: fine-tune the served model on new data without forgetting the old, and
promote it only when it is better on the new data and no worse (within a budget) on the old.

The candidate starts from the served model's weights and keeps its preprocessing (so both
models read the same prepared rows). Against forgetting, as options:

* ``replay``: old training rows mixed into the new training rows (rehearsal; re-created from
  the old models' own sources and recipes, as ``honing evaluate`` re-creates its test rows);
* ``lwf``: learning without forgetting (Li and Hoiem, 2017): a distillation term that keeps the
  candidate's outputs on the new rows close to the old model's (``honing.compress.Distiller``
  with the old model as teacher; ``lwf`` is the weight of that term);
* ``ewc``: elastic weight consolidation (Kirkpatrick et al., 2017): a penalty
  ``ewc / 2 * sum_i F_i (theta_i - theta*_i)^2`` pulling every weight towards the old model's,
  weighted by the old data's diagonal Fisher information (``honing.transfer.EWC``).

Each option (and the learning rate, epochs and temperature) can be searched: ``search=N`` runs
an N-trial study (``honing.tune.optimize``, a journal in ``OUT/search``) over ``space`` (default
``DEFAULT_SPACE``), each trial scored on validation rows only: the new data's validation score
minus, for every earlier data set, how far its validation drop exceeds the forgetting budget.
The best trial's candidate then faces the gates.

The gates, on held-out test rows only: the new data's test split (candidate >= old model) and,
for the data of every version before it (``lineage.json`` in the model folder lists them), old
model - candidate <= ``forgetting_budget`` (default 0.01 = one point of accuracy, or of R2 for
regression). A promoted candidate becomes the next version of ``HOME``
(``honing.artifacts._versions``), which a running server switches to by itself.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from honing._core import ConfigError, DataError, atomic_write_text, check_int, check_number

REFIT_RESULTS = "refit.json"
LINEAGE = "lineage.json"  # in a refit model folder: the recipes of the models before it, oldest first
SEARCH_DIR = "search"
# what a refit search varies by default: the three numbers that decide new-data gain against forgetting
DEFAULT_SPACE: dict[str, Any] = {"lr_scale": {"float": [0.05, 2.0], "log": True}, "replay": {"int": [0, 2000]},
                                 "lwf": {"float": [0.0, 0.8]}}
SEARCHABLE = ("epochs", "lr_scale", "replay", "lwf", "ewc", "temperature")


@dataclass(frozen=True)
class RefitConfig:
    epochs: int | None = None  # None: the model's own recipe's epochs
    lr_scale: float = 0.3  # the fine-tuning learning rate, as a share of the recipe's
    replay: int = 500  # old training rows mixed in (0: none)
    lwf: float = 0.0  # weight of the distillation term towards the old model (0: none)
    ewc: float = 0.0  # EWC penalty strength lambda (0: none)
    temperature: float = 2.0
    forgetting_budget: float = 0.01
    promote: bool = True  # False: evaluate and write the candidate, never promote
    search: int = 0  # trials of a search over ``space`` (0: no search, the values above)
    space: dict[str, Any] | None = field(default=None, hash=False)  # {field: distribution}; None: DEFAULT_SPACE

    def __post_init__(self) -> None:
        if self.epochs is not None:
            check_int("epochs", self.epochs, low=1)
        check_number("lr_scale", self.lr_scale, low=0, low_inclusive=False)
        check_int("replay", self.replay, low=0)
        check_number("lwf", self.lwf, low=0, high=1, high_inclusive=False)
        check_number("ewc", self.ewc, low=0)
        check_number("temperature", self.temperature, low=0, low_inclusive=False)
        check_number("forgetting_budget", self.forgetting_budget, low=0)
        check_int("search", self.search, low=0)
        if self.space is not None:
            self.search_space()

    def search_space(self) -> Any:
        """``space`` (or DEFAULT_SPACE) as a SearchSpace; its paths must be searchable fields."""
        from honing.tune import SearchSpace

        spec = self.space if self.space is not None else DEFAULT_SPACE
        unknown = [k for k in (spec if isinstance(spec, Mapping) else {}) if k not in SEARCHABLE]
        if unknown:
            raise ConfigError(f"invalid refit space: unknown field {unknown[0]!r}; allowed: {', '.join(SEARCHABLE)}")
        return SearchSpace.from_spec(spec, where="refit.space")

    def with_params(self, params: Mapping[str, Any]) -> RefitConfig:
        return replace(self, **{k: v for k, v in params.items() if k in SEARCHABLE})


def served_model_folder(home: str | Path) -> tuple[Path, str]:
    """The float model a refit starts from: the current version, else the run's model/ folder."""
    from honing.artifacts import current_version

    home = Path(home)
    current = current_version(home)
    if current is not None:
        return current[1], current[0]
    for folder in (home, home / "model"):
        if (folder / "meta.json").is_file():
            return folder, "model"
    raise DataError(f"{str(home)!r} is not a honing model or run folder (no meta.json, no model/ folder, no versions)")


@dataclass
class _Work:
    """What every fit of one refit shares: the old model, the new data, the old data sets."""

    old: Any  # LoadedModel
    recipe: Any  # the old recipe with the new source
    new: Any  # Dataset of the new source
    earlier: list[tuple[str, Any]]  # (source, Dataset) of every earlier model's data, the latest first
    lineage: list[dict[str, Any]]  # the recipes of the models before the candidate, oldest first

    @property
    def metric(self) -> str:
        return "accuracy" if self.old.task == "classification" else "r2"


def _open(home: Path, source: str, target: str | None, epochs: int | None) -> tuple[_Work, Path, str]:
    from honing.artifacts import load_model
    from honing.data import load
    from honing.recipe import parse_recipe

    folder, version = served_model_folder(home)
    old = load_model(folder)
    if not isinstance(old.model, torch.nn.Module) or (old.meta.get("compression") or {}).get("format", "torch") != "torch":
        raise ConfigError(f"invalid model for refit: {str(folder)!r} is a compressed variant; allowed: a float "
                          "model folder (refit the run's model/, then compress the new version)")
    old_recipe = parse_recipe(old.recipe, source=str(folder / "recipe.json"))
    params: dict[str, Any] = {"data.source": source, "tune": None}
    if target is not None:
        params["data.target"] = target
    recipe = old_recipe.with_params(params)
    if epochs is not None:
        recipe = recipe.with_params({"training.epochs": epochs})
    new = load(source, **{**recipe.load_args(), "preprocessor": old.preprocessor})
    if new.task == "classification" and old.task == "classification" and old.class_names:
        _align_classes(new, list(old.class_names), source)
    if new.task != old.task or new.num_outputs != old.num_outputs or (new.class_names or None) != (
            old.class_names or None):
        raise DataError(f"invalid data for refit: {source!r} gives a {new.task} task with {new.num_outputs} outputs "
                        f"{new.class_names or ''}; the model does {old.task} with {old.num_outputs} "
                        f"{old.class_names or ''}; allowed: new rows of the same task")
    lineage = [*_read_lineage(folder), old.recipe]
    earlier: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for entry in reversed(lineage):  # the latest first: it is the "old data" of the gates
        r = parse_recipe(entry, source=str(folder / LINEAGE))
        key = json.dumps(entry.get("data"), sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            earlier.append((r.data.source, load(r.data.source, **{**r.load_args(), "preprocessor": old.preprocessor})))
        except (DataError, ConfigError, OSError) as err:
            raise DataError(f"refit needs the data of the models before it ({r.data.source!r}) for replay and the "
                            f"forgetting gate, and cannot read it: {err}") from None
    for src, data in earlier:
        if data.test is None:
            raise DataError(f"refit needs a test split of every earlier data set to decide on promotion; "
                            f"{src!r} has none (test_size 0 in its recipe)")
    if (new.test if new.test is not None else new.val) is None:
        raise DataError("refit needs held-out rows of the new data (test_size or val_size > 0) to decide on promotion")
    return _Work(old, recipe, new, earlier, lineage), folder, version


def _align_classes(new: Any, classes: list[str], source: str) -> None:
    """The new rows' labels as the model's classes. New data names its classes by what it holds:
    a CSV whose rows lack a class has fewer names, an npz has indices ``'0'..'k-1'``. Names the
    model knows map to its indices; index names (all digits, none a class name) are the model's
    indices. ``new.info["labels_as"]`` records which."""
    from honing.data import Split

    names = [str(c) for c in (new.class_names or [])]
    if names == classes:
        return
    if all(n in classes for n in names):
        codes, how = [classes.index(n) for n in names], "class names"
    elif all(n.isdigit() for n in names) and not any(n in classes for n in names):
        codes, how = [int(n) for n in names], "class indices"
        if max(codes, default=0) >= len(classes):
            raise DataError(f"invalid data for refit: {source!r} has label {max(codes)}; allowed: class indices "
                            f"0..{len(classes) - 1} or the class names {classes}")
    else:
        unknown = [n for n in names if n not in classes]
        raise DataError(f"invalid data for refit: {source!r} has labels {unknown[:5]} the model does not know; "
                        f"allowed: its classes {classes} (or their indices)")
    table = torch.as_tensor(codes, dtype=torch.int64)
    for part in ("train", "val", "test"):
        split = getattr(new, part)
        if split is not None:
            setattr(new, part, Split(split.x, table[split.y]))
    new.class_names, new.num_outputs = list(classes), len(classes)
    new.info["labels_as"] = how


def _read_lineage(folder: Path) -> list[dict[str, Any]]:
    path = folder / LINEAGE
    if not path.is_file():
        return []
    from honing.artifacts._folder import _read_json

    data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) and isinstance(r.get("data"), dict) for r in data):
        raise DataError(f"invalid {str(path)!r}: expected a list of recipes (objects with a data section)")
    return data


def _share(work: _Work, replay: int) -> int:
    return -(-replay // len(work.earlier))


def _replayed(work: _Work, replay: int) -> int:
    return sum(min(_share(work, replay), len(d.train)) for _, d in work.earlier) if replay else 0


def _fit(work: _Work, config: RefitConfig) -> tuple[torch.nn.Module, int]:
    """One candidate: the old weights fine-tuned on the new rows (plus replayed old rows) with the
    options of ``config``. Returns it (CPU, eval mode) and the epochs it ran."""
    import torch.nn.functional as F

    from honing.compress import Distiller
    from honing.data import Split
    from honing.pipeline import build_trainer
    from honing.transfer import EWC, ContinualLoss

    recipe, new, old = work.recipe, work.new, work.old
    if config.epochs is not None:
        recipe = recipe.with_params({"training.epochs": config.epochs})
    train = new.train
    if config.replay:  # an equal share of every earlier data set's training rows
        g = torch.Generator().manual_seed(recipe.seed)
        share = _share(work, config.replay)
        xs, ys = [new.train.x], [new.train.y]
        for _, data in work.earlier:
            idx = torch.randperm(len(data.train), generator=g)[:share]
            xs.append(data.train.x[idx])
            ys.append(data.train.y[idx])
        train = Split(torch.cat(xs), torch.cat(ys))
    candidate = copy.deepcopy(old.model).train()
    lr = float(recipe.training.optimizer.lr or 1e-3) * config.lr_scale
    trained: Any = candidate
    wraps: list[Any] = []
    if config.lwf > 0:
        trained = Distiller(candidate, copy.deepcopy(old.model).eval(), temperature=config.temperature,
                            alpha=config.lwf, task=old.task)
        wraps.append(trained.loss)
    if config.ewc > 0:
        data = work.earlier[0][1]
        loss = F.cross_entropy if old.task == "classification" else (
            lambda p, y: F.mse_loss(p.reshape(len(y), -1), y.reshape(len(y), -1).to(p.dtype)))
        ewc = EWC(candidate, data.train.x, data.train.y, seed=recipe.seed, loss=loss)
        wraps.append(lambda base: ContinualLoss(base, candidate, ewc=ewc, ewc_lambda=config.ewc))

    def wrap(base: Any) -> Any:
        for w in wraps:
            base = w(base)
        return base

    trainer = build_trainer(recipe, trained, new, seed=recipe.seed, num_train=len(train),
                            with_val=new.val is not None, wrap_loss=wrap if wraps else None, lr=lr)
    history = trainer.fit(train, new.val).history
    return candidate.cpu().eval(), len(history)


def _search(work: _Work, config: RefitConfig, out: Path, progress: bool) -> tuple[RefitConfig, dict[str, Any],
                                                                                    torch.nn.Module | None]:
    """An N-trial study over the refit options, scored on validation rows; returns the best
    trial's config, a summary, and its candidate (None when it ran in an earlier call)."""
    from honing.tune import optimize

    if work.new.val is None or any(data.val is None for _, data in work.earlier):
        raise DataError("a refit search needs validation rows of the new data and of every earlier data set "
                        "(val_size > 0 in the recipes), so that the test rows decide only the gates")
    space = config.search_space()
    baseline = {src: _score(work.old.model, data.val, work.metric) for src, data in work.earlier}
    kept: dict[int, torch.nn.Module] = {}
    best = [float("-inf")]

    def objective(params: dict[str, Any], reporter: Any) -> float:
        trial_config = config.with_params(params)
        candidate, _ = _fit(work, trial_config)
        new_val = _score(candidate, work.new.val, work.metric)
        excess = {src: max(0.0, baseline[src] - _score(candidate, data.val, work.metric) - config.forgetting_budget)
                  for src, data in work.earlier}
        reporter.set("new_val", new_val)
        reporter.set("forgetting_excess", excess)
        value = new_val - sum(excess.values())
        if value > best[0]:  # only the best candidate is kept in memory
            best[0] = value
            kept.clear()
            kept[reporter.number] = candidate
        return value

    result = optimize(objective, study_name="refit", storage=None, space=space, directions="maximize",
                      n_trials=config.search, seed=work.recipe.seed, progress=progress, run_dir=out / SEARCH_DIR,
                      executor="inline")
    if result.best_trial is None:
        raise DataError(f"the refit search finished no trial (see {str(out / SEARCH_DIR)!r})")
    chosen = config.with_params(result.best_params)
    summary = {"trials": len(result.trials), "best_trial": result.best_trial, "best_value": result.best_value,
               "best_params": result.best_params, "space": space.to_spec(),
               "objective": "new-data validation score minus each earlier data set's validation drop beyond "
                            "the forgetting budget"}
    return chosen, summary, kept.get(result.best_trial)


def refit(home: str | Path, source: str, out: str | Path, config: RefitConfig | None = None, *,
          target: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Fine-tune ``home``'s served model on ``source``; write the candidate to ``out/model`` and
    the gates to ``out/refit.json``; promote it to the next version of ``home`` when both pass.
    ``target``: the new source's target column (default: the model's recipe's rule)."""
    from honing.artifacts import add_version, list_versions, save_model, set_current, write_reference
    from honing.pipeline import build_reference

    config = config or RefitConfig()
    start = time.time()
    home, out = Path(home), Path(out)
    work, folder, version = _open(home, source, target, config.epochs)
    old, new, metric = work.old, work.new, work.metric
    search = None
    chosen = config
    candidate: torch.nn.Module | None = None
    epochs_run = None
    if config.search:
        chosen, search, candidate = _search(work, config, out, progress)
    if candidate is None:  # no search, or its best trial ran in an earlier call: fit it (same seed)
        candidate, epochs_run = _fit(work, chosen)

    new_rows = new.test if new.test is not None else new.val
    scores: dict[str, Any] = {
        "new_data": {"old_model": _score(old.model, new_rows, metric), "candidate": _score(candidate, new_rows, metric),
                     "rows": len(new_rows)}}
    forgetting = {}
    for i, (src, data) in enumerate(work.earlier):
        entry = {"source": src, "old_model": _score(old.model, data.test, metric),
                 "candidate": _score(candidate, data.test, metric), "rows": len(data.test)}
        forgetting[src] = round(entry["old_model"] - entry["candidate"], 6)
        if i == 0:
            scores["old_data"] = entry
        else:
            scores.setdefault("earlier_data", []).append(entry)
    gates = {"new_data": scores["new_data"]["candidate"] >= scores["new_data"]["old_model"],
             "forgetting": all(f <= config.forgetting_budget + 1e-12 for f in forgetting.values())}
    model_dir = out / "model"
    save_model(model_dir, candidate, recipe=work.recipe.to_dict(), preprocessor=old.preprocessor, task=old.task,
               input_shape=old.input_shape, num_outputs=old.num_outputs, class_names=old.class_names, data=new)
    atomic_write_text(model_dir / LINEAGE, json.dumps(work.lineage, indent=1, default=str))
    write_reference(model_dir, build_reference(candidate, new, seed=work.recipe.seed))
    promoted = None
    if config.promote and all(gates.values()):
        if not list_versions(home):  # the first refit keeps what was served as v1
            set_current(home, add_version(home, folder))
        promoted = add_version(home, model_dir)
        set_current(home, promoted)
    result = {"source": source, "from": {"folder": str(folder), "version": version}, "metric": metric,
              "labels_as": new.info.get("labels_as", "the model's classes"),
              "scores": scores, "forgetting": forgetting[work.earlier[0][0]], "forgetting_by_source": forgetting,
              "gates": gates, "promoted": promoted, "config": asdict(config),
              "chosen": {k: getattr(chosen, k) for k in SEARCHABLE}, "search": search,
              "replayed_rows": _replayed(work, chosen.replay),
              "epochs_run": epochs_run, "seconds": round(time.time() - start, 3), "candidate": str(model_dir)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REFIT_RESULTS, json.dumps(result, indent=2))
    return result


@torch.no_grad()
def _score(model: Any, split: Any, metric: str) -> float:
    from honing.train import METRICS

    model.eval()
    pred = torch.cat([model(x) for x in split.x.split(1024)])
    return round(float(METRICS.get(metric)(pred, split.y)), 6)
