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


def load_model(directory: str | Path) -> LoadedModel:
    """Rebuild a model folder written by ``honing run`` / ``honing train`` (or ``save_model``)."""
    folder = Path(directory)
    if not (folder / META).is_file():
        inner = folder / "model"
        if (inner / META).is_file():  # a run folder: use its model/
            folder = inner
        else:
            raise DataError(f"{str(folder)!r} is not a honing model folder (no {META}); pass a run's model/ folder")
    meta = json.loads((folder / META).read_text())
    recipe = json.loads((folder / RECIPE).read_text())
    pre = Preprocessor.from_state_dict(json.loads((folder / PREPROCESSOR).read_text()), base_dir=folder)
    if meta.get("compression"):  # a compressed model: int8, half precision, pruned layers, ONNX, ...
        from honing.pipeline._compress_io import load_compressed

        model = load_compressed(folder, meta, lambda: _build(folder, meta, recipe))
    else:
        model = _build(folder, meta, recipe)
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    model.eval()
    return LoadedModel(
        model=model, preprocessor=pre, recipe=recipe, task=meta["task"], class_names=meta.get("class_names"),
        input_shape=tuple(meta["input_shape"]), num_outputs=meta["num_outputs"], meta=meta,
    )
