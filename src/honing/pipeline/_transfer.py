"""The recipe's ``transfer`` section in the pipeline: build, train, save and rebuild a fine-tuned model.

- ``build_transfer_model``: backbone from ``transfer.from``, a new head, the strategy applied
  (callbacks kept on ``model.transfer_callbacks``); ``few_shot`` fits its prototypes here.
- ``trainer_extras``: what ``build_trainer`` adds (layer decay, the strategy's callbacks, the
  continual loss with replay / EWC on the old task of a ``honing:`` source).
- ``transfer_meta`` / ``rebuild_transfer_model``: a self-contained model folder (the encoder's
  config and tokenizer are copied in; weights are the fine-tuned ones, LoRA merged).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from honing.data import Dataset, load

_OLD_TASKS: dict[str, Any] = {}  # per process: a honing source's old data set


def is_transfer(recipe: dict[str, Any]) -> bool:
    return recipe.get("transfer") is not None


def is_few_shot(recipe: dict[str, Any]) -> bool:
    return is_transfer(recipe) and recipe["transfer"]["strategy"] == "few_shot"


def transfer_load_args(recipe: dict[str, Any]) -> dict[str, Any]:
    """What the transfer source adds to ``honing.data.load``'s arguments: the text encoder's
    tokenizer, or a ``honing:`` model's own fitted preprocessing (``transfer.preprocessing``)."""
    from honing.transfer import tokenizer_folder

    t = recipe.get("transfer")
    if not t:
        return {}
    folder = tokenizer_folder(t["from"])
    if folder is not None:
        return {"tokenizer": str(folder)}
    if t["from"].startswith("honing:") and t.get("preprocessing", "source") == "source":
        folder = Path(t["from"].partition(":")[2])
        if not (folder / "meta.json").is_file() and not (folder / "model" / "meta.json").is_file():
            from honing._core import DataError

            raise DataError(f"invalid transfer.from {t['from']!r}: not a honing model folder (no meta.json); "
                            "allowed: a run folder or its model/ folder written by `honing run` / `honing train`")
        return {"preprocessor": str(folder)}
    return {}


def _backbone(t: dict[str, Any]) -> Any:
    from honing.transfer import load_backbone

    options = {"image_size": t["image_size"]} if t.get("image_size") else {}
    return load_backbone(t["from"], **options)


def build_transfer_model(recipe: dict[str, Any], data: Dataset, *, seed: int) -> nn.Module:
    from honing.transfer import LoraConfig, TransferConfig, TransferModel, fit_prototypes, prepare

    t = recipe["transfer"]
    backbone = _backbone(t)
    _check_input(backbone, data, t["from"])
    torch.manual_seed(seed)  # the new head's initial weights
    model = TransferModel(backbone, data.num_outputs, hidden=t["head"]["hidden"], dropout=t["head"]["dropout"])
    lora = t["lora"]
    config = TransferConfig(
        strategy=t["strategy"], freeze_blocks=t.get("freeze_blocks"), unfreeze=t["unfreeze"],
        layer_decay=t.get("layer_decay"), shots=t["shots"],
        lora=LoraConfig(r=lora["r"], alpha=lora["alpha"], dropout=lora["dropout"],
                        targets=tuple(lora["targets"]) if lora.get("targets") else None),
    )
    callbacks = prepare(model, config)
    if config.strategy == "few_shot":
        if data.task != "classification":
            from honing._core import ConfigError

            raise ConfigError(f"invalid transfer.strategy: few_shot needs a classification task; got {data.task}")
        fit_prototypes(model, data.train.x, data.train.y, shots=config.shots, seed=seed)
    model.transfer_callbacks = callbacks
    return model


def _check_input(backbone: Any, data: Dataset, source: str) -> None:
    from honing._core import ConfigError

    meta = getattr(backbone, "source_meta", None)
    if meta is not None and tuple(meta["input_shape"]) != tuple(data.input_shape):
        raise ConfigError(f"invalid transfer.from {source!r}: the model takes inputs of shape "
                          f"{tuple(meta['input_shape'])}, the data set's are {tuple(data.input_shape)}")
    if backbone.kind == "image" and len(data.input_shape) not in (2, 3):
        raise ConfigError(f"invalid transfer.from {source!r}: an image backbone needs image data; got rows of "
                          f"shape {tuple(data.input_shape)} (for sklearn:digits set data.image: true)")


# ------------------------------------------------------------------------------- continual

def old_task(recipe: dict[str, Any], model: nn.Module) -> Dataset | None:
    """The old task's data set of a ``honing:`` source (loaded as the source's own run did)."""
    t = recipe.get("transfer") or {}
    source_recipe = getattr(getattr(model, "backbone", None), "source_recipe", None)
    if not t.get("continual") or source_recipe is None:
        return None
    key = json.dumps(source_recipe.get("data"), sort_keys=True)
    if key not in _OLD_TASKS:
        from honing.pipeline._build import load_args

        _OLD_TASKS.clear()
        _OLD_TASKS[key] = load(source_recipe["data"]["source"], **load_args(source_recipe))
    return _OLD_TASKS[key]


def continual_loss(recipe: dict[str, Any], model: nn.Module, base: Any, *, seed: int) -> Any:
    """The Trainer loss with replay / EWC terms (None when the recipe asks for neither)."""
    from honing.transfer import EWC, ContinualLoss, Replay

    c = (recipe.get("transfer") or {}).get("continual")
    old = old_task(recipe, model)
    if not c or old is None or (not c.get("replay") and not c.get("ewc")):
        return None
    replay = Replay(old.train.x, old.train.y, size=c["replay"], seed=seed) if c.get("replay") else None
    ewc = EWC(model, old.train.x, old.train.y, seed=seed) if c.get("ewc") else None
    return ContinualLoss(base, model, ewc=ewc, ewc_lambda=c.get("ewc") or 0.0,
                         replay=replay, replay_weight=c["replay_weight"])


def transfer_results(recipe: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The ``transfer`` entry of results.json: strategy, parameters trained, the old task's score."""
    from honing.models import count_parameters
    from honing.transfer import TransferModel, load_backbone, old_task_accuracy

    t = recipe["transfer"]
    out: dict[str, Any] = {"from": t["from"], "strategy": t["strategy"], "parameters": count_parameters(model, trainable_only=False),
                           "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    old = old_task(recipe, model)
    if old is not None and old.test is not None:
        from honing.transfer import forgetting

        untouched = TransferModel(load_backbone(t["from"]), model.num_outputs)
        before = old_task_accuracy(untouched, old.test.x, old.test.y)
        out["old_task"] = {"source": old.source, **forgetting(before, old_task_accuracy(model, old.test.x, old.test.y))}
    return out


# ------------------------------------------------------------------------------- model folder

def transfer_meta(model: nn.Module, recipe: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Merge LoRA, copy what rebuilding needs into ``folder``; the ``transfer`` entry of meta.json."""
    from honing.transfer import PrototypeHead, TextEncoderBackbone, merge_lora

    merge_lora(model)
    t = recipe["transfer"]
    bb = model.backbone
    entry: dict[str, Any] = {
        "from": t["from"], "strategy": t["strategy"], "image_size": t.get("image_size"),
        "head": {"kind": "prototype" if isinstance(model.head, PrototypeHead) else "mlp",
                 "hidden": t["head"]["hidden"], "dropout": t["head"]["dropout"]},
    }
    if isinstance(bb, TextEncoderBackbone):
        folder.mkdir(parents=True, exist_ok=True)
        bb.module.config.save_pretrained(str(folder / "encoder"))
        entry["encoder"] = "encoder"
        entry["pad_token_id"] = bb.pad_token_id
    if getattr(bb, "source_meta", None) is not None:
        entry["source_meta"] = {k: bb.source_meta[k] for k in ("input_shape", "num_outputs", "class_names", "task")
                                if k in bb.source_meta}
        entry["source_recipe"] = {"model": bb.source_recipe["model"], "data": bb.source_recipe.get("data")}
    return entry


def rebuild_transfer_model(entry: dict[str, Any], folder: Path, num_outputs: int) -> nn.Module:
    """The architecture of a saved transfer model (weights are loaded by the caller)."""
    from honing.transfer import (
        EfficientNetBackbone,
        HonedBackbone,
        PrototypeHead,
        TextEncoderBackbone,
        TransferModel,
    )

    source = entry["from"]
    if entry.get("encoder"):
        bb = TextEncoderBackbone(folder / entry["encoder"], pad_token_id=entry.get("pad_token_id"),
                                 load_weights=False, spec={"from": source})
    elif source == "efficientnet-lite0":
        bb = EfficientNetBackbone(image_size=entry.get("image_size") or 224, load_weights=False)
    else:
        bb = HonedBackbone(None, load_weights=False, spec={"from": source}, source_meta=entry["source_meta"],
                           source_recipe=entry["source_recipe"])
    head = entry["head"]
    proto = PrototypeHead(num_outputs, bb.feature_dim) if head["kind"] == "prototype" else None
    return TransferModel(bb, num_outputs, hidden=head["hidden"], dropout=head["dropout"], head=proto)
