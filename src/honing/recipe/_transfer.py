"""The recipe's ``transfer`` section: fine-tune a pretrained model instead of building ``model``.

::

    transfer:
      from: minilm               # honing:<model folder> | minilm | hf:<folder> | efficientnet-lite0
      strategy: lora             # probe | full | freeze | gradual | lora | few_shot
      freeze_blocks: 2           # strategy freeze: blocks frozen from the input
      unfreeze: 1                # strategy gradual: epochs between unfreezing blocks
      layer_decay: 0.8           # lr of block i = lr * layer_decay ** (blocks above it)
      head: {hidden: [], dropout: 0.1}
      lora: {r: 8, alpha: 16, dropout: 0.05, targets: [query, value]}
      shots: 5                   # strategy few_shot: examples per class
      image_size: 64             # efficientnet-lite0 input size
      preprocessing: source      # honing: sources: scale new rows as the source's were (or refit)
      continual: {replay: 500, replay_weight: 1.0, ewc: null}   # honing: sources only

Every field can be searched in ``tune.space`` (``transfer.lora.r: {int: [4, 16]}``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from honing.recipe._errors import Invalid, show
from honing.recipe._sections import (
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    _base_dir,
    _resolve,
)

STRATEGY = Literal["probe", "full", "freeze", "gradual", "lora", "few_shot"]


class HeadSection(Section):
    hidden: list[PositiveInt] = []
    """widths of hidden layers of the head ([]: a linear head)"""
    dropout: Fraction = 0.0
    """dropout before each head layer"""


class LoraSection(Section):
    r: PositiveInt = 8
    """rank of the adapters"""
    alpha: PositiveFloat = 16.0
    """scaling of the adapters (alpha / r)"""
    dropout: Fraction = 0.0
    """dropout on the adapters' input"""
    targets: list[str] | None = None
    """module names to adapt; null: the attention projections"""


class ContinualSection(Section):
    """Keep the old task (a ``honing:`` source's own head and data) while learning the new one."""

    replay: PositiveInt | None = None
    """old-task rows mixed into each batch (rehearsal)"""
    replay_weight: NonNegativeFloat = 1.0
    """weight of the replayed rows' loss"""
    ewc: NonNegativeFloat | None = None
    """elastic weight consolidation strength (penalty on moving important weights)"""


class TransferSection(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              populate_by_name=True, serialize_by_alias=True, use_attribute_docstrings=True)

    from_: str = Field(alias="from", description="honing:<model folder> | minilm | hf:<folder> | efficientnet-lite0")
    """the pretrained network: honing:<model folder>, minilm, hf:<folder>, efficientnet-lite0"""
    strategy: STRATEGY = "full"
    """probe (train the head), full, freeze (first freeze_blocks), gradual (unfreeze over epochs), lora, few_shot"""
    freeze_blocks: Annotated[int, Field(ge=0)] | None = None
    """freeze: blocks kept frozen, from the input"""
    unfreeze: PositiveInt = 1
    """gradual: epochs between unfreezing one more block"""
    layer_decay: Annotated[float, Field(gt=0, le=1)] | None = None
    """learning-rate decay per block towards the input (0 < d <= 1)"""
    head: HeadSection = Field(default_factory=HeadSection)
    """the new head on top of the encoder"""
    lora: LoraSection = Field(default_factory=LoraSection)
    """LoRA adapters (strategy lora)"""
    shots: PositiveInt = 5
    """few_shot: training examples per class for the prototypes"""
    image_size: Annotated[int, Field(ge=32)] | None = None
    """efficientnet-lite0: images resized to this size (>= 32)"""
    preprocessing: Literal["source", "refit"] = "source"
    """honing: sources: source (use the pretrained model's scaling) or refit"""
    continual: ContinualSection | None = None
    """keep the old task of a honing: model while learning the new one"""

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str, info: ValidationInfo) -> str:
        """Folders resolve against the recipe's folder (their existence is checked when the run loads them)."""
        from honing.transfer import SOURCE_FORMS

        prefix, sep, rest = value.strip().partition(":")
        if value.strip() in ("minilm", "efficientnet-lite0"):
            return value.strip()
        if prefix in ("honing", "hf") and sep and rest.strip():
            return f"{prefix}:{_resolve(rest.strip(), _base_dir(info))}"
        raise Invalid([((), f"got {show(value)}; allowed: {', '.join(SOURCE_FORMS)}")])

    @model_validator(mode="after")
    def _whole(self) -> TransferSection:
        problems = []
        if self.strategy == "freeze" and self.freeze_blocks is None:
            problems.append((("freeze_blocks",), "strategy 'freeze' needs freeze_blocks (blocks frozen from the input)"))
        if self.image_size is not None and self.from_ != "efficientnet-lite0":
            problems.append((("image_size",), f"got {self.image_size} with from {self.from_!r}; "
                                              "allowed: null (image_size applies to efficientnet-lite0)"))
        if self.continual is not None:
            if not self.from_.startswith("honing:"):
                problems.append((("continual",), f"got a continual section with from {self.from_!r}; allowed: "
                                                 "null (continual fine-tuning keeps the old task of a honing: model)"))
            if self.strategy == "few_shot":
                problems.append((("continual",), "got a continual section with strategy few_shot; allowed: null "
                                                 "(few-shot takes no gradient step, so nothing is forgotten)"))
        if problems:
            raise Invalid(problems)
        return self

    @property
    def source(self) -> str:
        return self.from_
