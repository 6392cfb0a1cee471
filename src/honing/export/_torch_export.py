"""A model as a ``torch.export`` program (.pt2): the graph and weights, without the Python class.

``to_torch_export`` traces ``model(example)`` with ``torch.export.export`` (batch axis dynamic by
default) and saves it with ``torch.export.save``; ``load_torch_export`` gives back a module that
computes the same thing, loadable where the model's source code is not available.

Safety (read in torch 2.13's ``torch/export/pt2_archive/_package.py`` and
``torch/_export/serde/serialize.py``): a .pt2 file is a zip archive whose graph is JSON and whose
plain tensors (weights, buffers, constants) are raw bytes described by JSON metadata, so a program
from this module loads without unpickling any of its own data. But the format also allows
pickled payloads, which ``torch.export.load`` unpickles without restriction: tensor subclasses
(``torch.load(weights_only=False)``), custom and opaque objects (``torch._C._pickle_load_obj``,
``pickle.loads``), and example inputs that fail a ``weights_only=True`` load are loaded again with
``weights_only=False``. torch's own docstring says: never load a .pt2 from an untrusted source.
So ``load_torch_export`` first reads the archive's JSON payload configs and refuses a file with
any pickled weight or constant, or custom/opaque object, and checks that its sample inputs load
with ``weights_only=True`` (so torch's unrestricted fallback never runs); only then does it call
``torch.export.load``. Files written by ``to_torch_export`` pass. Still, prefer safetensors for
weights and ONNX for sharing models.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from honing._core import ConfigError, atomic_write_bytes
from honing.export._onnx import eval_mode, export_program, quiet


def to_torch_export(
    model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor, *, dynamic_batch: bool = True
) -> Path:
    """Trace ``model`` (eval mode; its training flag is restored) and save the program to ``path``.

    With ``dynamic_batch`` the program accepts any batch size, else only ``example``'s shape. The
    file (by convention ``*.pt2``) is written atomically. Returns ``path``.
    """
    with eval_mode(model):
        program = export_program(model, example, dynamic_batch=dynamic_batch)
    buffer = io.BytesIO()
    with quiet():
        torch.export.save(program, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


class ExportedModule(nn.Module):
    """``torch.export.load(path).module()`` behind a module whose ``eval()``/``train()`` work.

    The program was traced in eval mode and keeps that behaviour (dropout off, batch norm on its
    running statistics); the loaded graph module raises on ``eval()``, so ``train(mode)`` here only
    sets the flag, and code written for any nn.Module (``model.eval()``) runs unchanged.
    """

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def refuse_pickles(path: str | os.PathLike[str]) -> None:
    """Raise ConfigError if loading the .pt2 archive at ``path`` would unpickle anything."""
    import json
    import zipfile

    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid .pt2 file {os.fspath(path)!r}: {why}; allowed: a program whose weights, "
                           "constants and sample inputs load without unpickling (as to_torch_export writes)")

    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise bad("not a zip archive") from None
    with archive:
        names = archive.namelist()
        for name in names:
            if name.endswith("_config.json") and ("/data/weights/" in name or "/data/constants/" in name):
                config = json.loads(archive.read(name)).get("config", {})
                for fqn, meta in config.items():
                    if meta.get("use_pickle"):
                        raise bad(f"the tensor {fqn!r} is stored pickled")
                    if str(meta.get("path_name", "")).startswith(("custom_obj", "opaque_obj")):
                        raise bad(f"the constant {fqn!r} is a pickled object")
            elif "/data/sample_inputs/" in name:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as err:
                    raise bad(f"its sample inputs need unpickling ({type(err).__name__})") from None
            elif name.endswith((".pkl", ".pickle")):
                raise bad(f"it holds the pickle {name!r}")


def load_torch_export(path: str | os.PathLike[str]) -> nn.Module:
    """The module saved by ``to_torch_export`` (``torch.export.load(path).module()``, wrapped).

    Only for trusted files: see the module docstring.
    """
    if not Path(path).is_file():
        raise ConfigError(f"invalid path: got {os.fspath(path)!r}, which is not a file; allowed: a .pt2 file")
    refuse_pickles(path)
    with quiet():
        program = torch.export.load(os.fspath(path)).module()
    return ExportedModule(program).eval()
