"""``prepare``: a fine-tuning strategy applied to a ``TransferModel`` (freezing, gradual
unfreezing, LoRA adapters), returning the callbacks its training needs."""

from __future__ import annotations

from honing._core import ConfigError
from honing.train import Callback
from honing.transfer._lora import add_lora
from honing.transfer._model import GradualUnfreezing, TransferConfig, TransferModel


def prepare(model: TransferModel, config: TransferConfig) -> list[Callback]:
    """Apply a strategy to ``model``; returns the callbacks its training needs.

    Build the optimizer after ``prepare`` (``gradual`` leaves every parameter trainable so the
    optimizer holds them; its callback freezes before the first batch).
    """
    if not isinstance(config, TransferConfig):
        raise ConfigError(f"invalid config: got {type(config).__name__}; allowed: a honing.transfer.TransferConfig")
    s = config.strategy
    if s == "probe" or s == "few_shot":
        model.freeze_backbone()
    elif s == "full":
        model.freeze_backbone(0)
    elif s == "freeze":
        model.freeze_backbone(config.freeze_blocks)
    elif s == "gradual":
        model.freeze_backbone(0)
        return [GradualUnfreezing(config.unfreeze)]
    elif s == "lora":
        add_lora(model, config.lora)
    return []
