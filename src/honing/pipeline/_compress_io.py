"""Compressed model folders: how each format is written and read back.

A compressed stage is an ordinary model folder (``recipe.json``, ``preprocessor.json``,
``meta.json``) whose ``meta.json["compression"]`` says how its weights are stored:

=================== ====================== ===================================================
format              weights file           read back as
=================== ====================== ===================================================
``torch``           model.safetensors      the recipe's model; layers rebuilt at the saved
                                           shapes when structured pruning shrank them
``dynamic-int8``    model.safetensors      int8 weights + scales -> PyTorch dynamic int8
``fp16``/``bf16``   model.safetensors      half-precision weights, run in that precision
``onnx``            model.onnx             an ONNX Runtime session (float or int8 graph)
``torch-export``    model.pt2              ``torch.export.load(...).module()``
=================== ====================== ===================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from honing._core import ConfigError, atomic_save_file

WEIGHTS, ONNX_FILE, PT2_FILE = "model.safetensors", "model.onnx", "model.pt2"
FORMATS = ("torch", "dynamic-int8", "fp16", "bf16", "onnx", "torch-export")


def weights_file(folder: str | Path, meta: dict[str, Any]) -> Path:
    fmt = (meta.get("compression") or {}).get("format", "torch")
    name = {"onnx": ONNX_FILE, "torch-export": PT2_FILE}.get(fmt, WEIGHTS)
    return Path(folder) / name


def write_state(state: dict[str, Any]) -> Callable[[Path], None]:
    """A ``save_model(weights=...)`` writer of a plain tensor dict."""
    clean = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return lambda folder: atomic_save_file(folder / WEIGHTS, lambda tmp: save_file(clean, tmp))


def load_compressed(folder: Path, meta: dict[str, Any], build: Callable[[], nn.Module]) -> Any:
    """The runnable model of a compressed folder (``build()`` makes the recipe's float model)."""
    info = meta["compression"]
    fmt = info.get("format", "torch")
    if fmt not in FORMATS:
        raise ConfigError(f"invalid compression format in {folder / 'meta.json'}: got {fmt!r}; "
                          f"allowed: {', '.join(FORMATS)} (a newer honing wrote it?)")
    if fmt == "onnx":
        from honing.export import OnnxModel

        return OnnxModel(folder / ONNX_FILE, threads=int(info.get("threads", 1)))
    if fmt == "torch-export":
        from honing.export import load_torch_export

        return load_torch_export(folder / PT2_FILE)
    state = load_file(str(folder / WEIGHTS))
    model = build()
    if info.get("structured"):  # the float layers at the pruned widths first
        from honing.compress import rebuild_like

        if fmt == "torch":
            return rebuild_like(model, state)
        model = rebuild_like(model, {k: torch.zeros(shape) for k, shape in info["shapes"].items()})
    if fmt == "dynamic-int8":
        from honing.compress import load_quantized

        return load_quantized(model, state, layers=tuple(info.get("layers") or ("linear", "lstm", "gru")))
    if fmt in ("fp16", "bf16"):
        from honing.compress import HalfPrecision

        half = HalfPrecision(model, dtype=fmt)
        half.load_state_dict(state)
        return half
    model.load_state_dict(state)
    return model
