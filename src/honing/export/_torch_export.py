"""A model as a ``torch.export`` program (.pt2): the graph and weights, without the Python class.

``to_torch_export`` traces ``model(example)`` with ``torch.export.export`` (batch axis dynamic by
default) and saves it with ``torch.export.save``; ``load_torch_export`` gives back a module that
computes the same thing, loadable where the model's source code is not available.

Safety (read in torch 2.13's ``torch/export/__init__.py``, ``torch/export/pt2_archive/_package.py``
and ``torch/_export/serde/serialize.py``): torch's loader accepts more than one layout, and several
of its paths run foreign code: pickled weights, constants and sample inputs
(an unrestricted torch load, the pickle module, torch._C's object unpickler), AOTInductor
packages (compiled shared libraries), the older (torch 2.7) archive layout that ``torch.export.load``
falls back to when the newer one does not read, and legacy ``<model>.pt`` weight files. torch's
own docstring says: never load a .pt2 from an untrusted source. So ``load_torch_export`` reads the
file once into memory and checks it with ``check_pt2_archive`` against the one layout that
``to_torch_export`` writes: one archive root, a fixed list of member names (graph JSON, raw tensor
payloads described by JSON metadata, sample inputs that load with ``weights_only=True``), no
pickled payload, no duplicate or unknown member, a bounded size. Only those checked bytes are
handed to ``torch.export.load``. Anything else is refused before torch sees it.
"""

from __future__ import annotations

import io
import os
import re
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


_ROOT_FILES = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
_MEMBER = re.compile(r"(?:models/model\.json|data/weights/model_weights_config\.json|data/weights/weight_\d+"
                     r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
                     r"|data/sample_inputs/model\.pt)")
_PAYLOAD = {"data/weights/model_weights_config.json": ("data/weights/", re.compile(r"weight_\d+")),
            "data/constants/model_constants_config.json": ("data/constants/", re.compile(r"tensor_\d+"))}
MAX_PT2_BYTES = 4 << 30


def check_pt2_archive(data: bytes, *, where: str = "<bytes>") -> None:
    """Raise ConfigError unless ``data`` is a .pt2 archive in the layout ``to_torch_export`` writes,
    whose loading runs no foreign code (nothing unpickled, no compiled library, no legacy layout)."""
    import json
    import zipfile

    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid .pt2 file {where!r}: {why}; allowed: a torch.export program whose weights, "
                           "constants and sample inputs load without unpickling (as to_torch_export writes)")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise bad("not a zip archive (damaged or truncated?)") from None
    with archive:
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise bad("it holds a member name twice")
        if sum(i.file_size for i in infos) > 4 * len(data) + (1 << 20) or len(data) > MAX_PT2_BYTES:
            raise bad("its members unpack to far more than the file's size")
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise bad(f"it has {len(roots)} top-level entries ({', '.join(sorted(roots)[:4])}); the layout written by "
                      "torch.export.save has one archive root (the older torch 2.7 layout is refused: it unpickles)")
        root = roots.pop()
        members = {n.split("/", 1)[1]: n for n in names}
        for rel in members:
            if rel not in _ROOT_FILES and not _MEMBER.fullmatch(rel):
                raise bad(f"unexpected member {members[rel]!r} (pickles, compiled libraries and legacy files are refused)")
        for required in ("archive_format", "archive_version", "models/model.json",
                         "data/sample_inputs/model.pt", *_PAYLOAD):
            if required not in members:
                raise bad(f"the member {root}/{required} is missing")
        try:
            if archive.read(members["archive_format"]).decode().strip() != "pt2":
                raise bad("its archive_format is not pt2")
            for config_name, (folder, pattern) in _PAYLOAD.items():
                config = json.loads(archive.read(members[config_name])).get("config", {})
                if not isinstance(config, dict):
                    raise bad(f"{config_name} is not a mapping")
                for fqn, meta in config.items():
                    if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
                        raise bad(f"the tensor {fqn!r} is stored pickled")
                    path_name = str(meta.get("path_name", ""))
                    if not pattern.fullmatch(path_name) or folder + path_name not in members:
                        raise bad(f"the payload of {fqn!r} ({path_name!r}) is not a plain tensor file of the archive")
            torch.load(io.BytesIO(archive.read(members["data/sample_inputs/model.pt"])), weights_only=True)
        except ConfigError:
            raise
        except Exception as err:  # JSON, zip CRC or unpickling (weights_only) errors
            raise bad(f"a member does not read safely ({type(err).__name__}: {str(err)[:120]})") from None


def load_torch_export(path: str | os.PathLike[str]) -> nn.Module:
    """The module saved by ``to_torch_export`` (``torch.export.load(path).module()``, wrapped).

    Any file that is not in ``to_torch_export``'s layout is refused first: see the module docstring.
    """
    if not Path(path).is_file():
        raise ConfigError(f"invalid path: got {os.fspath(path)!r}, which is not a file; allowed: a .pt2 file")
    data = Path(path).read_bytes()  # read once: the bytes checked are the bytes loaded
    check_pt2_archive(data, where=os.fspath(path))
    try:
        with quiet():
            program = torch.export.load(io.BytesIO(data)).module()
    except Exception as err:
        raise ConfigError(f"invalid .pt2 file {os.fspath(path)!r}: torch.export cannot read it "
                          f"({type(err).__name__}: {str(err)[:200]})") from None
    return ExportedModule(program).eval()
