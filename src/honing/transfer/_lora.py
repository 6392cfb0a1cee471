"""LoRA adapters through peft, injected in place into the backbone, and merged back for export.

``add_lora`` puts ``W x + (alpha / r) B A x`` in place of each target linear (or conv) layer of
the backbone (``A``: r x in, random; ``B``: out x r, zeros, so the model starts unchanged), and
leaves only the adapters and the head trainable. ``merge_lora`` folds ``(alpha / r) B A`` into
``W`` and removes the adapters: a plain model, the same outputs, no peft needed to load it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from honing._core import ConfigError
from honing.transfer._backbones import require
from honing.transfer._model import LoraConfig, TransferModel


def add_lora(model: Any, config: Any) -> int:
    """Inject adapters into ``model.backbone.module``; returns the number of trainable parameters."""
    if not isinstance(model, TransferModel):
        raise ConfigError(f"add_lora needs a TransferModel; got {type(model).__name__}")
    if isinstance(config, dict):
        config = LoraConfig(**config)
    peft = require("peft", "LoRA adapters")
    module = model.backbone.module
    targets = list(config.targets or model.backbone.lora_targets or _linear_names(module))
    if not targets:
        raise ConfigError("invalid lora.targets: the backbone has no linear or conv layer to adapt")
    present = {n.rsplit(".", 1)[-1] for n, _ in module.named_modules()} | {n for n, _ in module.named_modules()}
    missing = [t for t in targets if t not in present and not any(n.endswith("." + t) for n in present)]
    if missing:
        sample = sorted({n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))})
        raise ConfigError(f"invalid lora.targets: {missing} match no module of the backbone; "
                          f"allowed: names of its layers, e.g. {sample[:12]}")
    peft_config = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                  target_modules=targets, bias="none")
    peft.inject_adapter_in_model(peft_config, module)
    for name, p in module.named_parameters():
        p.requires_grad_("lora_" in name)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model.trainable_parameters()


def has_lora(module: nn.Module) -> bool:
    return any("lora_" in n for n, _ in module.named_parameters())


def merge_lora(model: Any) -> Any:
    """Fold every adapter into its base layer and remove it (in place); returns ``model``."""
    if not has_lora(model):
        return model
    from peft.tuners.lora import LoraLayer

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in layers:
        layer.merge()
        base = layer.get_base_layer()
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, base)
    return model


def _linear_names(module: nn.Module) -> list[str]:
    return sorted({n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, nn.Linear) and n})
