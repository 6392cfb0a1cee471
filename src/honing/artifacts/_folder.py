"""The model folder: everything needed to rebuild and use a trained model.

```
model/
  model.safetensors    weights
  recipe.json          the resolved recipe that built it
  preprocessor.json    the fitted preprocessing (train rows only)
  meta.json            folder format version, task, input shape, number of outputs,
                       class names, library versions, the split, compression/transfer entries
```

``meta.json["format"]`` is the folder format's version (``FOLDER_VERSION``); a folder of
another version is refused with a message that says which honing wrote it. How the weights
are stored is ``meta.json["compression"]["format"]``, one of the registered formats
(``_formats.py``).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from honing._core import ConfigError, DataError, atomic_write_text
from honing.data import Preprocessor
from honing.artifacts._formats import WEIGHTS, load_compressed, weights_file, write_state
from honing.artifacts._loaded import LoadedModel, split_digest
from honing.models import create_model

RECIPE, PREPROCESSOR, META = "recipe.json", "preprocessor.json", "meta.json"
# the model folder's layout version: what meta.json["format"] says; bumped when a file changes meaning
FOLDER_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of the libraries a run depends on."""
    out = {"python": platform.python_version()}
    for name in ("honing", "torch", "numpy", "scikit-learn", "optuna", "safetensors", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def split_record(data: Any) -> dict[str, Any]:
    """What a model folder keeps of its data set: the source, the target column(s), the rows per
    split and a digest of the test split (``honing evaluate`` re-creates it and checks)."""
    record: dict[str, Any] = {"source": data.source, "target": data.info.get("target"),
                              "rows": {s: len(getattr(data, s)) for s in ("train", "val", "test")
                                       if getattr(data, s) is not None}}
    if data.test is not None:
        record["test_digest"] = split_digest(data.test)
    return record


def save_model(
    directory: str | Path,
    model: nn.Module,
    *,
    recipe: dict[str, Any],
    preprocessor: Preprocessor,
    task: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    class_names: list[str] | None,
    extra: dict[str, Any] | None = None,
    weights: Any = None,
    data: Any = None,
) -> Path:
    """Write the model folder (each file atomically; ``meta.json`` last, so it marks a complete folder).

    ``data``: the Dataset it was trained on (its split is recorded in ``meta.json["split"]``).
    ``weights``: a callable ``weights(folder)`` that writes the weights itself (a compressed
    model: int8 tensors, an ONNX file, ...) instead of ``model.safetensors`` of ``model``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if data is not None:
        extra["split"] = split_record(data)
    if recipe.get("transfer"):  # LoRA merged into a copy (the caller's model is not changed)
        from honing.artifacts._transfer import transfer_entry, with_lora_merged

        model = with_lora_merged(model)
        extra["transfer"] = transfer_entry(model, recipe, folder)
    (weights or write_state(model.state_dict()))(folder)
    atomic_write_text(folder / RECIPE, json.dumps(recipe, indent=2))
    # a text preprocessor's tokenizer is copied into the folder, so the folder stands alone
    pre_state = preprocessor.save_tokenizer(folder) if hasattr(preprocessor, "save_tokenizer") else preprocessor.state_dict()
    atomic_write_text(folder / PREPROCESSOR, json.dumps(pre_state))
    meta = {
        "format": FOLDER_VERSION,
        "task": task,
        "input_shape": list(input_shape),
        "num_outputs": num_outputs,
        "class_names": class_names,
        "model": (recipe.get("model") or {}).get("name") or (recipe.get("transfer") or {}).get("from"),
        "versions": versions(),
        **extra,
    }
    atomic_write_text(folder / META, json.dumps(meta, indent=2))
    return folder


def _build(folder: Path, meta: dict[str, Any], recipe: dict[str, Any]) -> nn.Module:
    """The model the folder's recipe builds, with fresh weights."""
    if meta.get("transfer"):
        from honing.artifacts._transfer import rebuild_transfer_model

        return rebuild_transfer_model(meta["transfer"], folder, meta["num_outputs"])
    model_kw = dict(recipe["model"])
    name = model_kw.pop("name")
    return create_model(name, input_shape=tuple(meta["input_shape"]), num_outputs=meta["num_outputs"], **model_kw)


TASKS = ("classification", "regression")
MAX_PARAMETERS = 2_000_000_000  # what a model folder may ask to build (8 GB of float32)
MAX_JSON_BYTES = 64 << 20


def load_model(directory: str | Path) -> LoadedModel:
    """Rebuild a model folder written by ``honing run`` / ``honing train`` (or ``save_model``).

    Every file of the folder is untrusted input (docs/security.md): JSON files are checked for
    the keys and types they must have, paths inside them must stay inside the folder, the
    preprocessing's statistics must be finite (a zero standard deviation is refused), the weights'
    names and shapes must match the architecture before they are loaded, and nothing is
    unpickled. Anything wrong raises DataError naming the folder and the file.
    """
    folder = Path(directory)
    if not (folder / META).is_file():
        inner = folder / "model"
        if (inner / META).is_file():  # a run folder: use its model/
            folder = inner
        else:
            raise DataError(f"{str(folder)!r} is not a honing model folder (no {META}); pass a run's model/ folder")
    step = META
    try:
        meta = _check_meta(_read_json(folder / META))
        step = RECIPE
        recipe = _read_json(folder / RECIPE)
        if not isinstance(recipe, dict) or not (isinstance(recipe.get("model"), dict) or meta.get("transfer")):
            raise DataError("it must be a mapping with a model section (or meta.json a transfer entry)")
        if not meta.get("transfer") and not isinstance(recipe["model"].get("name"), str):
            raise DataError("model.name must be a string")
        step = PREPROCESSOR
        pre_state = _read_json(folder / PREPROCESSOR)
        _check_inside(folder, pre_state)  # before a tokenizer is read from the path it names
        pre = Preprocessor.from_state_dict(pre_state, base_dir=folder)
        if meta.get("transfer"):
            _check_inside(folder, meta["transfer"])
        if meta.get("compression"):  # a compressed model: int8, half precision, pruned layers, ONNX, ...
            step = weights_file(folder, meta).name
            model = load_compressed(folder, meta, lambda: _bounded_build(folder, meta, recipe))
        else:
            step = "model (built from recipe.json and meta.json)"
            model = _bounded_build(folder, meta, recipe)
            step = WEIGHTS
            model.load_state_dict(_checked_weights(folder / WEIGHTS, model))
        model.eval()
    except (DataError, ConfigError) as err:
        raise DataError(f"invalid model folder {str(folder)!r}: {step}: {err}") from None
    except MemoryError:
        raise DataError(f"invalid model folder {str(folder)!r}: {step}: building it ran out of memory") from None
    except Exception as err:  # whatever a damaged file makes a library raise: never a traceback
        raise DataError(f"invalid model folder {str(folder)!r}: {step}: {type(err).__name__}: "
                        f"{str(err)[:300]}") from None
    return LoadedModel(
        model=model, preprocessor=pre, recipe=recipe, task=meta["task"], class_names=meta.get("class_names"),
        input_shape=tuple(meta["input_shape"]), num_outputs=meta["num_outputs"], meta=meta,
    )


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError("the file is missing")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DataError(f"the file is larger than {MAX_JSON_BYTES >> 20} MB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise DataError(f"not valid JSON ({type(err).__name__}: {str(err)[:120]})") from None


def _check_meta(meta: Any) -> dict[str, Any]:
    """meta.json's keys, with the types and ranges the loader relies on."""
    if not isinstance(meta, dict):
        raise DataError(f"got {type(meta).__name__}; allowed: a JSON object")

    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise DataError(f"{key}: got {str(meta.get(key))[:80]!r}; allowed: {allowed}")

    version = meta.get("format", 1)
    need(isinstance(version, int) and not isinstance(version, bool), "format", "an integer (the folder format version)")
    if version != FOLDER_VERSION:
        who = "a newer honing" if version > FOLDER_VERSION else "an older honing"
        raise DataError(f"format: got folder format version {version}, written by {who}; this honing "
                        f"({versions().get('honing', '?')}) reads version {FOLDER_VERSION}: load it with the honing "
                        "that wrote it (meta.json['versions']['honing']), or re-run the recipe")
    need(meta.get("task") in TASKS, "task", " or ".join(TASKS))
    shape = meta.get("input_shape")
    need(isinstance(shape, list) and 1 <= len(shape) <= 4
         and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 20 for d in shape),
         "input_shape", "a list of 1 to 4 positive integers")
    need(int(np.prod(shape)) <= 1 << 28, "input_shape", "at most 2**28 values per row")
    n = meta.get("num_outputs")
    need(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1 << 20, "num_outputs",
         "an integer from 1 to 2**20")
    names = meta.get("class_names")
    if meta["task"] == "classification":
        need(names is None or (isinstance(names, list) and len(names) == n
                               and all(isinstance(c, (str, int)) for c in names)),
             "class_names", f"null or a list of {n} names (one per output)")
    need(meta.get("compression") is None or isinstance(meta["compression"], dict), "compression", "null or an object")
    need(meta.get("transfer") is None or isinstance(meta["transfer"], dict), "transfer", "null or an object")
    return meta


def _check_inside(folder: Path, entry: Any) -> None:
    """Paths a model folder's JSON names (tokenizer, encoder) must stay inside the folder."""
    if not isinstance(entry, dict):
        return
    root = folder.resolve()
    options = entry.get("options") if isinstance(entry.get("options"), dict) else {}
    for key in ("tokenizer", "encoder"):
        value = entry.get(key, options.get(key))
        if isinstance(value, str) and value:
            target = (folder / value).resolve()
            if target != root and root not in target.parents:
                raise DataError(f"{key}: got {value!r}, a path outside the model folder; allowed: a path inside it")


def _bounded_build(folder: Path, meta: dict[str, Any], recipe: dict[str, Any]) -> nn.Module:
    """``_build``, after counting the parameters it would allocate on the meta device."""
    try:
        with torch.device("meta"):
            shapes = _build(folder, meta, recipe)
    except (DataError, ConfigError, KeyError, TypeError):
        raise
    except Exception:  # a model that cannot be built on the meta device: built for real below
        shapes = None
    if shapes is not None:
        count = sum(p.numel() for p in shapes.parameters())
        if count > MAX_PARAMETERS:
            raise DataError(f"the recipe's model has {count:,} parameters; allowed: at most {MAX_PARAMETERS:,}")
    return _build(folder, meta, recipe)


def _checked_weights(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The safetensors file's tensors, after their names and shapes were compared with ``model``."""
    from safetensors import safe_open

    if not path.is_file():
        raise DataError("the file is missing")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with safe_open(str(path), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise DataError(f"the tensors do not match the architecture (missing: {', '.join(missing[:5]) or 'none'}; "
                        f"unexpected: {', '.join(unexpected[:5]) or 'none'})")
    for key, shape in expected.items():
        if found[key] != shape:
            raise DataError(f"the tensor {key!r} has shape {list(found[key])}; the architecture needs {list(shape)}")
    return load_file(str(path))
