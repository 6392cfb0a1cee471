"""Transfer models in a model folder: what meta.json keeps of the pretrained source, and how
the architecture is rebuilt from it (the encoder's config and tokenizer are copied in, the
weights are the fine-tuned ones, LoRA merged)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn


def with_lora_merged(model: nn.Module) -> nn.Module:
    """``model`` itself without LoRA adapters; else a copy with them merged (the caller's model,
    still training or still to be compressed, keeps its adapters)."""
    from honing.transfer import has_lora, merge_lora

    if not has_lora(model):
        return model
    merged = copy.deepcopy(model)
    merge_lora(merged)
    return merged


def transfer_entry(model: nn.Module, recipe: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Copy what rebuilding needs into ``folder`` (a text encoder's config); the ``transfer``
    entry of meta.json (``model``: LoRA already merged)."""
    from honing.transfer import PrototypeHead, TextEncoderBackbone

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
