"""Checkpoints: a folder with three files, each written atomically.

- ``model.safetensors``: the model's ``state_dict`` (weights and buffers), safetensors format.
- ``trainer_state.pt``: everything else needed to continue bit for bit (optimizer, schedule,
  callbacks, augment, batch-order generator, global RNG states, epoch, step, history, best
  tracking and best weights). Saved with ``torch.save``, read only with
  ``torch.load(weights_only=True)``, so loading never runs pickled code.
- ``checkpoint.json``: epoch and file names, written last; a checkpoint exists once it does.

The epoch is also stored inside the two data files; if a crash between the writes left them
from different epochs, loading says so instead of resuming from a mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, DataError, atomic_save_file, atomic_write_text

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
INDEX_FILE = "checkpoint.json"
FORMAT_VERSION = 1

PathLike = str | os.PathLike[str]


def has_checkpoint(directory: PathLike) -> bool:
    return (Path(directory) / INDEX_FILE).is_file()


def read_index(directory: PathLike) -> dict[str, Any]:
    path = Path(directory) / INDEX_FILE
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no checkpoint in {str(directory)!r}: {INDEX_FILE} is missing") from None
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable checkpoint index {str(path)!r}: {err}") from None
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        raise DataError(f"checkpoint index {str(path)!r} has an unknown format; expected format_version {FORMAT_VERSION}")
    return index


def save_checkpoint(directory: PathLike, model: nn.Module, state: dict[str, Any], *, epoch: int) -> Path:
    """Write weights, then trainer state, then the index, each atomically; returns the folder."""
    from safetensors.torch import save_model

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"honing_epoch": str(epoch), "format": "pt"}
    atomic_save_file(folder / WEIGHTS_FILE, lambda tmp: save_model(model, tmp, metadata=dict(meta)))
    payload = {**state, "epoch": epoch, "format_version": FORMAT_VERSION}
    atomic_save_file(folder / STATE_FILE, lambda tmp: torch.save(payload, tmp))
    index = {"format_version": FORMAT_VERSION, "epoch": epoch, "weights": WEIGHTS_FILE, "state": STATE_FILE}
    atomic_write_text(folder / INDEX_FILE, json.dumps(index, indent=2) + "\n")
    return folder


def _weights_epoch(path: Path) -> int | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    value = meta.get("honing_epoch")
    return None if value is None else int(value)


def load_checkpoint(directory: PathLike, model: nn.Module) -> dict[str, Any]:
    """Load the weights into ``model`` (in place, on its device) and return the trainer state."""
    from safetensors.torch import load_model

    folder = Path(directory)
    index = read_index(folder)
    weights, state_path = folder / index["weights"], folder / index["state"]
    epoch = int(index["epoch"])
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"checkpoint in {str(folder)!r} is incomplete: {state_path.name} is missing") from None
    found = {"weights": _weights_epoch(weights), "trainer state": state.get("epoch")}
    if any(v != epoch for v in found.values()):
        raise DataError(
            f"checkpoint in {str(folder)!r} is inconsistent (a write was interrupted?): index says epoch "
            f"{epoch}, files hold {found}; delete the folder or resume from a copy"
        )
    load_model(model, str(weights), strict=True)
    return state


def load_checkpoint_weights(directory: PathLike, model: nn.Module, *, strict: bool = True) -> nn.Module:
    """Load a checkpoint folder's (or a ``.safetensors`` file's) weights into ``model``; returns it."""
    from safetensors.torch import load_model

    path = Path(directory)
    if path.is_dir():
        path = path / read_index(path)["weights"]
    if not path.is_file():
        raise DataError(f"no weights at {str(path)!r}")
    load_model(model, str(path), strict=strict)
    return model


# --- pairing saved callback states with a trainer's callbacks -------------------------------


def match_callbacks(callbacks: list[Any], saved: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """Pair callbacks with saved states by class name, in order. Callbacks without state (such as
    one that interrupted the first run) may come and go; a stateful one may not."""
    unused = list(range(len(saved)))
    pairs = []
    for cb in callbacks:
        name = type(cb).__name__
        i = next((j for j in unused if saved[j]["name"] == name), None)
        if i is None:
            if cb.state_dict():
                raise ConfigError(
                    f"invalid callbacks for resuming: the checkpoint holds no state for {name}; pass the "
                    f"callbacks the run was started with ({', '.join(e['name'] for e in saved) or 'none'})"
                )
            continue
        unused.remove(i)
        pairs.append((cb, saved[i]["state"]))
    lost = [saved[j]["name"] for j in unused if saved[j]["state"]]
    if lost:
        raise ConfigError(
            f"invalid callbacks for resuming: the checkpoint holds state for {', '.join(lost)}, which this "
            f"trainer lacks; pass the callbacks the run was started with"
        )
    return pairs
