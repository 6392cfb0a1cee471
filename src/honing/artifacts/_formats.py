"""How a model folder's weights are stored and read back: the format registry.

``meta.json["compression"]["format"]`` names the format (none: ``torch``). Each format says
which file holds the weights, which runtime runs it, and how to read it back:

=================== ====================== ===================================================
format              weights file           read back as
=================== ====================== ===================================================
``torch``           model.safetensors      the recipe's model; layers rebuilt at the saved
                                           shapes when structured pruning shrank them
``dynamic-int8``    model.safetensors      int8 weights + scales -> PyTorch dynamic int8
``fp16``/``bf16``   model.safetensors      half-precision weights, run in that precision
``onnx``            model.onnx             an ONNX Runtime session (float or int8 graph)
``torch-export``    model.pt2              ``torch.export.load(...).module()``
``ensemble``        model.safetensors      the members (each from its own model section) and
                                           their weights or stacking head (``honing.ensemble``)
=================== ====================== ===================================================

A new format (an ensemble, a searched architecture, ...) is one ``register_format`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from honing._core import Registry, atomic_save_file

WEIGHTS, ONNX_FILE, PT2_FILE = "model.safetensors", "model.onnx", "model.pt2"

# load(folder, meta, build) -> a runnable model; build() makes the recipe's float model (fresh weights)
Loader = Callable[[Path, dict[str, Any], Callable[[], nn.Module]], Any]


@dataclass(frozen=True)
class ModelFormat:
    """One way of storing a model's weights in its folder."""

    name: str
    weights_file: str
    load: Loader
    runtime: str = "pytorch"


FORMATS: Registry[ModelFormat] = Registry("model format")


def register_format(name: str, *, weights_file: str, load: Loader, runtime: str = "pytorch",
                    description: str = "") -> ModelFormat:
    """Add a model-folder format (``meta.json["compression"]["format"] == name``)."""
    fmt = ModelFormat(name, weights_file, load, runtime)
    FORMATS.register(name, lambda: fmt, description=description)
    return fmt


def list_formats() -> list[str]:
    return FORMATS.names()


def model_format(meta: dict[str, Any]) -> ModelFormat:
    """The format of a folder's meta.json (a clear error for a format this honing does not know)."""
    from honing._core import ConfigError, UnknownNameError

    name = (meta.get("compression") or {}).get("format", "torch")
    try:
        return FORMATS.create(name)
    except UnknownNameError:
        raise ConfigError(f"invalid compression format in meta.json: got {name!r}; allowed: "
                          f"{', '.join(list_formats())} (a newer honing, or a plugin, wrote it?)") from None


def weights_file(folder: str | Path, meta: dict[str, Any]) -> Path:
    return Path(folder) / model_format(meta).weights_file


def write_state(state: dict[str, Any]) -> Callable[[Path], None]:
    """A ``save_model(weights=...)`` writer of a plain tensor dict."""
    clean = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return lambda folder: atomic_save_file(folder / WEIGHTS, lambda tmp: save_file(clean, tmp))


def load_compressed(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> Any:
    """The runnable model of a folder whose meta.json has a ``compression`` entry."""
    return model_format(meta).load(folder, meta, build)


# --- the built-in formats ------------------------------------------------------------------------


def _float_shapes(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> tuple[nn.Module, dict]:
    """The recipe's float model (at the pruned widths when structured pruning shrank it) and the state."""
    info = meta["compression"]
    state = load_file(str(folder / WEIGHTS))
    model = build()
    if info.get("structured"):
        from honing.compress import rebuild_like

        model = rebuild_like(model, {k: torch.zeros(shape) for k, shape in info["shapes"].items()})
    return model, state


def _load_torch(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> nn.Module:
    info = meta["compression"]
    if info.get("structured"):
        from honing.compress import rebuild_like

        return rebuild_like(build(), load_file(str(folder / WEIGHTS)))
    model = build()
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model


def _load_dynamic_int8(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> nn.Module:
    from honing.compress import load_quantized

    model, state = _float_shapes(folder, meta, build)
    layers = tuple(meta["compression"].get("layers") or ("linear", "lstm", "gru"))
    return load_quantized(model, state, layers=layers)


def _load_half(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> nn.Module:
    from honing.compress import HalfPrecision

    model, state = _float_shapes(folder, meta, build)
    half = HalfPrecision(model, dtype=meta["compression"]["format"])
    half.load_state_dict(state)
    return half


def _load_onnx(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> Any:
    from honing.export import OnnxModel

    return OnnxModel(folder / ONNX_FILE, threads=int(meta["compression"].get("threads", 1)))


def _load_ensemble(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> nn.Module:
    from honing.ensemble import load_ensemble

    return load_ensemble(folder, meta, build)


def _load_pt2(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> Any:
    from honing.export import load_torch_export

    return load_torch_export(folder / PT2_FILE)


register_format("torch", weights_file=WEIGHTS, load=_load_torch, description="float weights in safetensors")
register_format("dynamic-int8", weights_file=WEIGHTS, load=_load_dynamic_int8,
                description="int8 weights + scales, PyTorch dynamic quantization")
register_format("fp16", weights_file=WEIGHTS, load=_load_half, description="half-precision weights")
register_format("bf16", weights_file=WEIGHTS, load=_load_half, description="bfloat16 weights")
register_format("onnx", weights_file=ONNX_FILE, load=_load_onnx, runtime="onnxruntime",
                description="an ONNX graph (float or int8) run by ONNX Runtime")
register_format("ensemble", weights_file=WEIGHTS, load=_load_ensemble,
                description="several models and their weights (or a stacking head) as one module")
register_format("torch-export", weights_file=PT2_FILE, load=_load_pt2, description="a torch.export program")
