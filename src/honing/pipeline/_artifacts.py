"""The model folder: everything needed to rebuild and use a trained model.

```
model/
  model.safetensors    weights
  recipe.json          the resolved recipe that built it
  preprocessor.json    the fitted preprocessing (train rows only)
  meta.json            task, input shape, number of outputs, class names, versions
```
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from honing._core import ConfigError, DataError, atomic_write_text
from honing.data import Preprocessor
from honing.models import create_model
from honing.pipeline._compress_io import write_state

WEIGHTS, RECIPE, PREPROCESSOR, META = "model.safetensors", "recipe.json", "preprocessor.json", "meta.json"


def versions() -> dict[str, str]:
    """Versions of the libraries a run depends on."""
    out = {"python": platform.python_version()}
    for name in ("honing", "torch", "numpy", "scikit-learn", "optuna", "safetensors", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


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
) -> Path:
    """Write the model folder (each file atomically; ``meta.json`` last, so it marks a complete folder).

    ``weights``: a callable ``weights(folder)`` that writes the weights itself (a compressed
    model: int8 tensors, an ONNX file, ...) instead of ``model.safetensors`` of ``model``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if recipe.get("transfer"):  # LoRA merged; the encoder's config copied in
        from honing.pipeline._transfer import transfer_meta

        extra["transfer"] = transfer_meta(model, recipe, folder)
    (weights or write_state(model.state_dict()))(folder)
    atomic_write_text(folder / RECIPE, json.dumps(recipe, indent=2))
    # a text preprocessor's tokenizer is copied into the folder, so the folder stands alone
    pre_state = preprocessor.save_tokenizer(folder) if hasattr(preprocessor, "save_tokenizer") else preprocessor.state_dict()
    atomic_write_text(folder / PREPROCESSOR, json.dumps(pre_state))
    meta = {
        "format": 1,
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


@dataclass
class LoadedModel:
    """A model folder loaded back: the module, its preprocessing and what it was trained for."""

    model: nn.Module
    preprocessor: Preprocessor
    recipe: dict[str, Any]
    task: str
    class_names: list[str] | None
    input_shape: tuple[int, ...]
    num_outputs: int
    meta: dict[str, Any]

    @torch.no_grad()
    def forward_prepared(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs for already-prepared inputs (eval mode, batched)."""
        self.model.eval()
        outs = [self.model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, self.num_outputs)

    def prepare(self, raw_x: Any) -> torch.Tensor:
        """Apply the saved preprocessing (fitted on the training rows) to raw rows."""
        return self.preprocessor.transform(raw_x)

    def predict(self, raw_x: Any) -> np.ndarray:
        """Class names (or indices when unnamed) for classification; values for regression."""
        out = self.forward_prepared(self.prepare(raw_x))
        if self.task == "regression":
            values = out.numpy()
            inverse = getattr(self.preprocessor, "inverse_transform_target", None)
            return inverse(values) if callable(inverse) else values
        idx = out.argmax(1).numpy()
        return np.asarray(self.class_names, dtype=object)[idx] if self.class_names else idx

    def predict_proba(self, raw_x: Any) -> np.ndarray:
        if self.task != "classification":
            raise ConfigError("invalid call: predict_proba needs a classification model; this one does regression")
        return torch.softmax(self.forward_prepared(self.prepare(raw_x)), dim=1).numpy()

    def evaluate(self, source: str, *, split: str = "test") -> dict[str, Any]:
        """Metrics on a data source, prepared with the saved preprocessing (never refit).

        ``split="test"``: the source's fixed test set when it has one (fashion-mnist, idx, npz
        with x_test), else all its rows; ``split="all"``: every row.
        """
        from honing.data import read_source
        from honing.train import METRICS, create_loss, default_metrics

        data_opts = self.recipe.get("data", {})
        keep = ("target", "folder", "image", "drop_columns", "delimiter")
        opts = {k: data_opts[k] for k in keep if data_opts.get(k) not in (None, [], ())}
        raw = read_source(source, **opts)
        if split == "test" and raw.x_test is not None:
            raw_x, raw_y, used = raw.x_test, raw.y_test, "test"
        elif raw.x_test is not None:
            raw_x, raw_y, used = np.concatenate([raw.x, raw.x_test]), np.concatenate([raw.y, raw.y_test]), "all"
        else:
            raw_x, raw_y, used = raw.x, raw.y, "all"
        x, y = self.prepare(raw_x), self.encode_labels(raw_y)
        pred = self.forward_prepared(x)
        loss = create_loss("cross_entropy" if self.task == "classification" else "mse")
        out: dict[str, Any] = {"rows": int(len(y)), "split": used, "loss": float(loss(pred, y))}
        for name in default_metrics(self.task):
            key = name if isinstance(name, str) else getattr(name, "__name__", str(name))
            out[key] = float(METRICS.get(key)(pred, y))
        return out

    def encode_labels(self, raw_y: Any) -> torch.Tensor:
        """Raw labels (names or indices) -> the int64 class indices the model was trained on."""
        y = np.asarray(raw_y).reshape(len(raw_y), -1)
        if self.task == "regression":
            t = y.astype(np.float32)
            fwd = getattr(self.preprocessor, "transform_target", None)
            return torch.as_tensor(fwd(t) if callable(fwd) else t, dtype=torch.float32)
        y = y[:, 0]
        names = self.class_names or []
        index = {name: i for i, name in enumerate(names)}
        out = np.empty(len(y), dtype=np.int64)
        for i, v in enumerate(y.tolist()):
            key = _label_key(v)
            if key in index:
                out[i] = index[key]
            elif isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
                out[i] = int(v)
            else:
                raise DataError(f"label {v!r} is not one of the model's classes: {', '.join(names)}")
            if not 0 <= out[i] < self.num_outputs:
                raise DataError(f"label {v!r} is outside the model's {self.num_outputs} classes")
        return torch.from_numpy(out)


def _label_key(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _build(folder: Path, meta: dict[str, Any], recipe: dict[str, Any]) -> nn.Module:
    """The model the folder's recipe builds, with fresh weights."""
    if meta.get("transfer"):
        from honing.pipeline._transfer import rebuild_transfer_model

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
            from honing.pipeline._compress_io import load_compressed, weights_file

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

    need(meta.get("format", 1) == 1, "format", "1 (a newer honing wrote this folder?)")
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
