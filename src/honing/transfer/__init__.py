"""Fine-tuning and transfer learning from pretrained models.

One call builds a model and the callbacks its strategy needs::

    from honing import transfer
    model, callbacks = transfer.create("minilm", num_outputs=2, strategy="lora", lora={"r": 8})

and ``transfer.finetune(...)`` also trains it on a ``honing.data.Dataset``. Recipes use the
``transfer:`` section (``honing run``), every field of it searchable in ``tune.space``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from honing._core import ConfigError
from honing.transfer._backbones import (
    SOURCE_FORMS,
    Backbone,
    EfficientNetBackbone,
    HonedBackbone,
    TextEncoderBackbone,
    load_backbone,
    minilm_path,
    tokenizer_folder,
)
from honing.transfer._continual import EWC, ContinualLoss, Replay, forgetting, old_task_accuracy
from honing.transfer._fewshot import PrototypeHead, embed, fit_prototypes, support_indices
from honing.transfer._lora import add_lora, has_lora, merge_lora
from honing.transfer._model import (
    STRATEGIES,
    GradualUnfreezing,
    LoraConfig,
    TransferConfig,
    TransferModel,
)
from honing.transfer._strategies import prepare

__all__ = [
    "EWC",
    "SOURCE_FORMS",
    "STRATEGIES",
    "Backbone",
    "ContinualLoss",
    "EfficientNetBackbone",
    "GradualUnfreezing",
    "HonedBackbone",
    "LoraConfig",
    "PrototypeHead",
    "Replay",
    "TextEncoderBackbone",
    "TransferConfig",
    "TransferModel",
    "add_lora",
    "create",
    "embed",
    "finetune",
    "fit_prototypes",
    "forgetting",
    "has_lora",
    "load_backbone",
    "merge_lora",
    "minilm_path",
    "old_task_accuracy",
    "prepare",
    "support_indices",
    "tokenizer_folder",
]


def create(
    source: str | nn.Module | Backbone,
    num_outputs: int,
    *,
    strategy: str = "full",
    freeze_blocks: int | None = None,
    unfreeze: int = 1,
    lora: dict[str, Any] | LoraConfig | None = None,
    hidden: Sequence[int] = (),
    dropout: float = 0.0,
    **backbone_options: Any,
) -> tuple[TransferModel, list[Any]]:
    """A TransferModel on ``source`` with ``strategy`` applied, and the callbacks it needs.

    ``source``: ``"minilm"``, ``"hf:<folder>"``, ``"honing:<model folder>"``,
    ``"efficientnet-lite0"`` (``image_size=``), a ``Backbone``, or an ``nn.Module`` with
    ``feature_dim=`` (and optionally ``blocks=``). Build the optimizer afterwards (layer-wise
    decay: ``honing.optim.create_optimizer(model, "adamw", layer_decay=0.8)``).
    """
    if isinstance(lora, dict):
        lora = LoraConfig(**{k: (tuple(v) if k == "targets" and v is not None else v) for k, v in lora.items()})
    config = TransferConfig(strategy=strategy, freeze_blocks=freeze_blocks, unfreeze=unfreeze,
                            lora=lora or LoraConfig())
    backbone = load_backbone(source, **backbone_options)
    model = TransferModel(backbone, num_outputs, hidden=hidden, dropout=dropout)
    return model, prepare(model, config)


def finetune(
    source: str | nn.Module | Backbone,
    data: Any,
    *,
    strategy: str = "full",
    epochs: int = 3,
    optimizer: str = "adamw",
    lr: float = 3e-5,
    weight_decay: float = 0.01,
    layer_decay: float | None = None,
    batch_size: int = 32,
    shots: int = 5,
    seed: int = 0,
    progress: bool = True,
    **create_options: Any,
) -> tuple[TransferModel, Any]:
    """Fine-tune ``source`` on ``data`` (a ``honing.data.Dataset``); returns ``(model, FitResult)``.

    ``strategy="few_shot"`` fits prototypes on ``shots`` training examples per class and
    returns ``(model, None)``. LoRA adapters are merged into the returned model.
    """
    from honing.optim import create_optimizer
    from honing.train import TrainConfig, Trainer

    if data.task != "classification" and strategy == "few_shot":
        raise ConfigError(f"invalid strategy: few_shot needs a classification data set; got {data.task}")
    model, callbacks = create(source, data.num_outputs, strategy=strategy, **create_options)
    if strategy == "few_shot":
        return fit_prototypes(model, data.train.x, data.train.y, shots=shots, seed=seed), None
    opt = create_optimizer(model, optimizer, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                         monitor="val_loss" if data.val is not None else "loss",
                         keep_best=data.val is not None)
    trainer = Trainer(model, opt, task=data.task, callbacks=callbacks, config=config)
    result = trainer.fit(data.train, data.val)
    merge_lora(model)
    return model, result
