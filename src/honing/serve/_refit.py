"""``honing refit``: fine-tune the served model on new data without forgetting the old, and
promote it only when it is better on the new data and no worse (within a budget) on the old.

The candidate starts from the served model's weights and keeps its preprocessing (so both
models read the same prepared rows). Against forgetting, as options:

* ``replay``: old training rows mixed into the new training rows (rehearsal; re-created from
  the old model's own source and recipe, as ``honing evaluate`` re-creates its test rows);
* ``lwf``: learning without forgetting (Li and Hoiem, 2017): a distillation term that keeps the
  candidate's outputs on the new rows close to the old model's (``honing.compress.Distiller``
  with the old model as teacher; ``lwf`` is the weight of that term).

The gates, on held-out rows only: the new data's test split (candidate >= old model) and the
old model's own test split (old model - candidate <= ``forgetting_budget``, default 0.01 =
one point of accuracy, or of R2 for regression). A promoted candidate becomes the next version
of ``HOME`` (``honing.artifacts._versions``), which a running server switches to by itself.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from honing._core import ConfigError, DataError, atomic_write_text, check_int, check_number

REFIT_RESULTS = "refit.json"


@dataclass(frozen=True)
class RefitConfig:
    epochs: int | None = None  # None: the model's own recipe's epochs
    lr_scale: float = 0.3  # the fine-tuning learning rate, as a share of the recipe's
    replay: int = 500  # old training rows mixed in (0: none)
    lwf: float = 0.0  # weight of the distillation term towards the old model (0: none)
    temperature: float = 2.0
    forgetting_budget: float = 0.01
    promote: bool = True  # False: evaluate and write the candidate, never promote

    def __post_init__(self) -> None:
        if self.epochs is not None:
            check_int("epochs", self.epochs, low=1)
        check_number("lr_scale", self.lr_scale, low=0, low_inclusive=False)
        check_int("replay", self.replay, low=0)
        check_number("lwf", self.lwf, low=0, high=1, high_inclusive=False)
        check_number("temperature", self.temperature, low=0, low_inclusive=False)
        check_number("forgetting_budget", self.forgetting_budget, low=0)


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


def refit(home: str | Path, source: str, out: str | Path, config: RefitConfig | None = None, *,
          target: str | None = None) -> dict[str, Any]:
    """Fine-tune ``home``'s served model on ``source``; write the candidate to ``out/model`` and
    the gates to ``out/refit.json``; promote it to the next version of ``home`` when both pass.
    ``target``: the new source's target column (default: the model's recipe's rule)."""
    from honing.artifacts import add_version, list_versions, load_model, save_model, set_current, write_reference
    from honing.compress import Distiller
    from honing.data import Split, load
    from honing.pipeline import build_reference, build_trainer
    from honing.recipe import parse_recipe

    config = config or RefitConfig()
    start = time.time()
    home, out = Path(home), Path(out)
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
    if config.epochs is not None:
        recipe = recipe.with_params({"training.epochs": config.epochs})
    new = load(source, **{**recipe.load_args(), "preprocessor": old.preprocessor})
    if new.task != old.task or new.num_outputs != old.num_outputs or (new.class_names or None) != (
            old.class_names or None):
        raise DataError(f"invalid data for refit: {source!r} gives a {new.task} task with {new.num_outputs} outputs "
                        f"{new.class_names or ''}; the model does {old.task} with {old.num_outputs} "
                        f"{old.class_names or ''}; allowed: new rows of the same task")
    try:
        old_data = load(old_recipe.data.source, **{**old_recipe.load_args(), "preprocessor": old.preprocessor})
    except (DataError, ConfigError, OSError) as err:
        raise DataError(f"refit needs the old model's own data ({old_recipe.data.source!r}) for replay and the "
                        f"forgetting gate, and cannot read it: {err}") from None

    train = new.train
    replayed = 0
    if config.replay:
        old_rows = old_data.train
        g = torch.Generator().manual_seed(recipe.seed)
        idx = torch.randperm(len(old_rows), generator=g)[:config.replay]
        replayed = len(idx)
        train = Split(torch.cat([new.train.x, old_rows.x[idx]]), torch.cat([new.train.y, old_rows.y[idx]]))
    candidate = copy.deepcopy(old.model).train()
    lr = float(recipe.training.optimizer.lr or 1e-3) * config.lr_scale
    trained: Any = candidate
    wrap = None
    if config.lwf > 0:
        trained = Distiller(candidate, copy.deepcopy(old.model).eval(), temperature=config.temperature,
                            alpha=config.lwf, task=old.task)
        wrap = trained.loss
    trainer = build_trainer(recipe, trained, new, seed=recipe.seed, num_train=len(train),
                            with_val=new.val is not None, wrap_loss=wrap, lr=lr)
    history = trainer.fit(train, new.val).history
    candidate = candidate.cpu().eval()

    new_rows = new.test if new.test is not None else new.val
    if new_rows is None or old_data.test is None:
        raise DataError("refit needs held-out rows of the new data (test_size or val_size > 0) and the old model's "
                        "test split, to decide on promotion")
    metric = "accuracy" if old.task == "classification" else "r2"
    scores = {
        "new_data": {"old_model": _score(old.model, new_rows, metric), "candidate": _score(candidate, new_rows, metric),
                     "rows": len(new_rows)},
        "old_data": {"old_model": _score(old.model, old_data.test, metric),
                     "candidate": _score(candidate, old_data.test, metric), "rows": len(old_data.test)},
    }
    forgetting = scores["old_data"]["old_model"] - scores["old_data"]["candidate"]
    gates = {"new_data": scores["new_data"]["candidate"] >= scores["new_data"]["old_model"],
             "forgetting": forgetting <= config.forgetting_budget + 1e-12}
    model_dir = out / "model"
    save_model(model_dir, candidate, recipe=recipe.to_dict(), preprocessor=old.preprocessor, task=old.task,
               input_shape=old.input_shape, num_outputs=old.num_outputs, class_names=old.class_names, data=new)
    write_reference(model_dir, build_reference(candidate, new, seed=recipe.seed))
    promoted = None
    if config.promote and all(gates.values()):
        if not list_versions(home):  # the first refit keeps what was served as v1
            set_current(home, add_version(home, folder))
        promoted = add_version(home, model_dir)
        set_current(home, promoted)
    result = {"source": source, "from": {"folder": str(folder), "version": version}, "metric": metric,
              "scores": scores, "forgetting": round(forgetting, 6), "gates": gates, "promoted": promoted,
              "config": asdict(config), "replayed_rows": replayed, "epochs_run": len(history),
              "seconds": round(time.time() - start, 3), "candidate": str(model_dir)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REFIT_RESULTS, json.dumps(result, indent=2))
    return result


@torch.no_grad()
def _score(model: Any, split: Any, metric: str) -> float:
    from honing.train import METRICS

    model.eval()
    pred = torch.cat([model(x) for x in split.x.split(1024)])
    return round(float(METRICS.get(metric)(pred, split.y)), 6)
