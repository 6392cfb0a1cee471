"""``TransferModel``: a pretrained backbone and a new head, and the strategies that decide what trains.

Strategies (``STRATEGIES``):

- ``probe``: linear probe; the backbone is frozen (and kept in eval mode), only the head trains.
- ``full``: everything trains.
- ``freeze``: the first ``freeze_blocks`` blocks are frozen, the rest trains.
- ``gradual``: the head trains first, then one more block from the top every ``unfreeze``
  epochs (:class:`GradualUnfreezing`, a Trainer callback).
- ``lora``: low-rank adapters (peft) in the backbone's linear layers; only they and the head train.
- ``few_shot``: no gradient training; a prototype head holds the mean embedding of ``shots``
  examples per class (see ``_fewshot.py``).

Frozen means ``requires_grad=False``: torch optimizers skip parameters without gradients, so a
frozen parameter stays bit-identical. A block whose parameters are all frozen stays in eval
mode while the model trains (batch-norm statistics and dropout do not move either), and a
fully frozen backbone runs under ``no_grad``. Layer-wise learning-rate decay comes from
``layer_groups()`` (blocks input to output, the head last) through ``honing.optim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError
from honing.train import Callback
from honing.transfer._backbones import Backbone, _under

STRATEGIES = ("probe", "full", "freeze", "gradual", "lora", "few_shot")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters: rank ``r``, scale ``alpha / r``, dropout on the adapter input, target module
    names (a name matches a module whose dotted name ends with it; None: the backbone's default)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"invalid lora.r: got {self.r!r}; allowed: an int >= 1")
        if not self.alpha > 0:
            raise ConfigError(f"invalid lora.alpha: got {self.alpha!r}; allowed: a number > 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"invalid lora.dropout: got {self.dropout!r}; allowed: 0 <= dropout < 1")


@dataclass(frozen=True)
class TransferConfig:
    """What ``prepare`` sets up. ``unfreeze``: epochs between unfreezing blocks (``gradual``)."""

    strategy: str = "full"
    freeze_blocks: int | None = None
    unfreeze: int = 1
    layer_decay: float | None = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    shots: int = 5

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"invalid strategy: got {self.strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if self.strategy == "freeze" and self.freeze_blocks is None:
            raise ConfigError("invalid freeze_blocks: strategy 'freeze' needs freeze_blocks (how many blocks, from the input)")
        if self.freeze_blocks is not None and (not isinstance(self.freeze_blocks, int) or self.freeze_blocks < 0):
            raise ConfigError(f"invalid freeze_blocks: got {self.freeze_blocks!r}; allowed: an int >= 0")
        if not isinstance(self.unfreeze, int) or self.unfreeze < 1:
            raise ConfigError(f"invalid unfreeze: got {self.unfreeze!r}; allowed: an int >= 1 (epochs between unfreezing blocks)")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"invalid layer_decay: got {self.layer_decay!r}; allowed: 0 < layer_decay <= 1")
        if not isinstance(self.shots, int) or self.shots < 1:
            raise ConfigError(f"invalid shots: got {self.shots!r}; allowed: an int >= 1")


class TransferModel(nn.Module):
    """``head(backbone(x))``: a backbone (see ``load_backbone``) and a new head for the task.

    The head: ``hidden`` layers (ReLU, ``dropout``) then a linear layer to ``num_outputs``; or
    any module given as ``head``.
    """

    def __init__(self, backbone: Backbone, num_outputs: int, *, hidden: Sequence[int] = (),
                 dropout: float = 0.0, head: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise ConfigError(f"invalid backbone: got {type(backbone).__name__}; allowed: a honing.transfer.Backbone "
                              "(load_backbone(...) or Backbone(module, feature_dim=...))")
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ConfigError(f"invalid num_outputs: got {num_outputs!r}; allowed: an int >= 1")
        if not 0 <= dropout < 1:
            raise ConfigError(f"invalid head dropout: got {dropout!r}; allowed: 0 <= dropout < 1")
        self.backbone = backbone
        self.num_outputs = num_outputs
        if head is None:
            layers: list[nn.Module] = []
            width = backbone.feature_dim
            for h in hidden:
                if not isinstance(h, int) or h < 1:
                    raise ConfigError(f"invalid head hidden: got {list(hidden)!r}; allowed: a list of ints >= 1")
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
                width = h
            if dropout:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(width, num_outputs))
            head = nn.Sequential(*layers)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's embedding ``(N, feature_dim)`` (under no_grad when it is all frozen)."""
        if torch.is_grad_enabled() and not any(p.requires_grad for p in self.backbone.module.parameters()):
            with torch.no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def old_task(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of the source model's own head (``honing:`` sources) on the current backbone."""
        old = getattr(self.backbone, "old_head", None)
        if old is None:
            raise ConfigError("this model has no old task: its backbone is not a honing model folder")
        return old(self.backbone(x))

    # --- blocks ---------------------------------------------------------------------------
    def layer_groups(self) -> list[list[str]]:
        """Parameter-name prefixes from input to output: the backbone's blocks, then the head."""
        return [[f"backbone.module.{p}" for p in block] for block in self.backbone.blocks] + [["head"]]

    def block_parameters(self, index: int) -> list[nn.Parameter]:
        """Parameters of backbone block ``index`` (LoRA adapters included)."""
        bb = self.backbone
        return [p for n, p in bb.module.named_parameters() if bb.block_of(n) == index]

    @property
    def num_blocks(self) -> int:
        return len(self.backbone.blocks)

    def freeze_backbone(self, blocks: int | None = None) -> None:
        """Freeze the first ``blocks`` blocks (all when None); the head and later blocks train."""
        n = self.num_blocks if blocks is None else blocks
        if not isinstance(n, int) or not 0 <= n <= self.num_blocks:
            raise ConfigError(f"invalid freeze_blocks: got {blocks!r}; allowed: 0..{self.num_blocks} "
                              f"(this backbone has {self.num_blocks} blocks)")
        for name, p in self.backbone.module.named_parameters():
            i = self.backbone.block_of(name)
            p.requires_grad_(not (i < n if i >= 0 else n == self.num_blocks))
        if self.training:
            self.train()

    def unfreeze_top(self, blocks: int) -> None:
        """Train the last ``blocks`` blocks (and the head); freeze the rest of the backbone."""
        self.freeze_backbone(self.num_blocks - max(0, min(blocks, self.num_blocks)))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode:  # frozen parts keep eval-mode behaviour (batch-norm statistics, dropout)
            module = self.backbone.module
            if not any(p.requires_grad for p in module.parameters()):
                self.backbone.eval()
            else:  # a block prefix may name a parameter (no mode of its own), not a module
                modules, named = dict(module.named_modules()), list(module.named_parameters())
                for block in self.backbone.blocks:
                    if not any(p.requires_grad for n, p in named if any(_under(n, q) for q in block)):
                        for prefix in block:
                            if prefix in modules:
                                modules[prefix].eval()
        old = getattr(self.backbone, "old_head", None)
        if old is not None:
            old.eval()
        return self


class GradualUnfreezing(Callback):
    """Train the head alone for ``every`` epochs, then unfreeze one more backbone block from the
    top every ``every`` epochs: in epoch ``e`` the top ``(e - 1) // every`` blocks train.

    The optimizer must already hold every parameter (build it before the first epoch, with all
    of them trainable): frozen ones have no gradient and are skipped until unfrozen. The state
    depends on the epoch alone, so a resumed run unfreezes the same blocks.
    """

    def __init__(self, every: int = 1) -> None:
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"invalid unfreeze: got {every!r}; allowed: an int >= 1 (epochs between unfreezing blocks)")
        self.every = every
        self.unfrozen: list[int] = []  # blocks training, per epoch (a record for reports and tests)

    def blocks_for(self, epoch: int) -> int:
        return (epoch - 1) // self.every

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        model = trainer.model
        if not isinstance(model, TransferModel):
            raise ConfigError(f"GradualUnfreezing needs a TransferModel; got {type(model).__name__}")
        k = min(self.blocks_for(epoch), model.num_blocks)
        model.unfreeze_top(k)
        model.train()
        self.unfrozen.append(k)
