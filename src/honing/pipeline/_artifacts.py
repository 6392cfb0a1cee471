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
        """Apply the saved preprocessing (fitted on the training rows) to raw rows.

        Rows of a tabular model may come as a pandas DataFrame or a list of dicts (matched by
        column name: a missing column, or an unknown one, is an error that names it; the
        training target and ``drop_columns`` are ignored), or as a numpy array / list of lists
        in the training column order (``meta.json["columns"]``)."""
        return self.preprocessor.transform(self.rows(raw_x))

    @property
    def columns(self) -> list[str] | None:
        """The feature columns a tabular model takes, in order (None for images, sequences, text)."""
        return list(self.preprocessor.columns) if hasattr(self.preprocessor, "columns") else None

    def rows(self, raw_x: Any, *, where: str = "the input") -> Any:
        """Raw rows in the model's column order: named columns (a DataFrame, a list of dicts)
        are matched by name; anything else is passed on as it is."""
        columns = self.columns
        if columns is None:
            return raw_x
        ignore = set(self._not_features())
        if hasattr(raw_x, "columns") and hasattr(raw_x, "to_numpy"):  # a pandas DataFrame
            names = [str(c) for c in raw_x.columns]
            order = match_columns(names, columns, ignore=ignore, where=where)
            return raw_x.to_numpy(dtype=object)[:, order]
        if isinstance(raw_x, dict):
            raw_x = [raw_x]
        if isinstance(raw_x, (list, tuple)) and raw_x and all(isinstance(r, dict) for r in raw_x):
            out = np.empty((len(raw_x), len(columns)), dtype=object)
            for i, row in enumerate(raw_x):
                match_columns([str(k) for k in row], columns, ignore=ignore, where=f"{where}, row {i + 1}")
                out[i] = [row[c] for c in columns]
            return out
        return raw_x

    def _not_features(self) -> list[str]:
        data = self.recipe.get("data") or {}
        target = data.get("target")
        targets = [target] if isinstance(target, str) else list(target or [])
        return [*targets, *(self.meta.get("target") or []), *(data.get("drop_columns") or [])]

    def predict(self, raw_x: Any) -> np.ndarray:
        """Class names (or indices when unnamed) for classification; values in the target's own
        units for regression: shape ``(n,)`` for one target, ``(n, k)`` for k targets."""
        out = self.forward_prepared(self.prepare(raw_x))
        if self.task == "regression":
            values = np.asarray(self.preprocessor.inverse_transform_target(out.numpy()), dtype=np.float64)
            return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        idx = out.argmax(1).numpy()
        return np.asarray(self.class_names, dtype=object)[idx] if self.class_names else idx

    def predict_proba(self, raw_x: Any) -> np.ndarray:
        if self.task != "classification":
            raise ConfigError("invalid call: predict_proba needs a classification model; this one does regression")
        return torch.softmax(self.forward_prepared(self.prepare(raw_x)), dim=1).numpy()

    def evaluate(self, source: str, *, split: str = "unseen") -> dict[str, Any]:
        """Metrics on a data source, prepared with the saved preprocessing (never refit), in the
        target's own units. ``rows`` says which rows were scored.

        - ``split="unseen"`` (default): rows the model never trained on. On the source it was
          trained on, the run's held-out test split, re-created exactly (same recipe, same seed;
          checked against the digest ``meta.json`` stores); on a source with a fixed test set, that
          set; on any other source, all its rows.
        - ``split="test"``: the source's test split (its fixed test set, or the run's held-out
          split of the training source); a DataError when it has none.
        - ``split="all"``: every row (on the training source this includes training rows, and
          ``rows`` says so).

        Tabular sources are matched to the model by column name.
        """
        from honing.train import METRICS, create_loss, default_metrics

        if split not in EVAL_SPLITS:
            raise ConfigError(f"invalid split: got {split!r}; allowed: {', '.join(map(repr, EVAL_SPLITS))}")
        raw_x, raw_y, x, described = self._rows_to_score(source, split)
        y = self.encode_labels(raw_y)
        if x is None:
            x = self.prepare(self.rows(raw_x, where=f"source {source!r}"))
        pred = self.forward_prepared(x)
        if self.task == "regression":  # metrics in the target's own units
            pred = torch.as_tensor(np.asarray(self.preprocessor.inverse_transform_target(pred.numpy())),
                                   dtype=torch.float32)
        loss = create_loss("cross_entropy" if self.task == "classification" else "mse")
        out: dict[str, Any] = {"rows": int(len(y)), "split": described["split"], "scored": described["scored"],
                               "loss": float(loss(pred, y))}
        for name in default_metrics(self.task):
            key = name if isinstance(name, str) else getattr(name, "__name__", str(name))
            out[key] = float(METRICS.get(key)(pred, y))
        return out

    def _rows_to_score(self, source: str, split: str) -> tuple[Any, Any, torch.Tensor | None, dict[str, str]]:
        """(raw rows, raw targets, prepared rows or None, what was scored)."""
        from honing.data import read_source

        data_opts = self.recipe.get("data", {})
        trained_on = data_opts.get("source")
        own = same_source(source, trained_on)
        if split != "all" and own:
            return self._recreated_test(source)
        prefix = str(source).strip().partition(":")[0].lower()
        keep = _EVAL_OPTIONS.get(prefix, ("folder", "image"))
        opts = {k: data_opts[k] for k in keep if data_opts.get(k) not in (None, [], ())}
        raw = read_source(source, **opts)
        if prefix == "csv" and self.columns is not None:  # a header names them
            order = match_columns(list(raw.layout["columns"]), self.columns, ignore=set(), where=f"source {source!r}")
            raw.x = raw.x[:, order]
            if raw.x_test is not None:
                raw.x_test = raw.x_test[:, order]
        if split != "all" and raw.x_test is not None:
            return raw.x_test, raw.y_test, None, {"split": "test", "scored": f"the fixed test set of {source!r}"}
        if split == "test":
            raise DataError(f"invalid --split test for source {source!r}: it has no fixed test set and is not the "
                            f"source the model was trained on ({trained_on!r}); allowed: --split unseen or all "
                            "(every row of a new file is unseen)")
        x, y = raw.x, raw.y
        if raw.x_test is not None:
            x, y = np.concatenate([raw.x, raw.x_test]), np.concatenate([raw.y, raw.y_test])
        if split == "all" and own:
            return x, y, None, {"split": "all", "scored": f"every row of {source!r}, the model's TRAINING ROWS included "
                                                          "(optimistic: use --split unseen for a fair score)"}
        return x, y, None, {"split": "all", "scored": f"every row of {source!r} (not the source the model trained on)"}

    def _recreated_test(self, source: str) -> tuple[Any, Any, torch.Tensor, dict[str, str]]:
        """The run's held-out test split of its own source, re-created with its recipe and checked."""
        from honing.data import load
        from honing.pipeline._build import load_args

        args = load_args(self.recipe)
        args.pop("tokenizer", None)
        args["preprocessor"] = self.preprocessor
        if getattr(self.preprocessor, "kind", "") == "text":
            args["tokenizer"] = self.preprocessor.tokenizer
        data = load(source, **args)
        if data.test is None:
            raise DataError(f"invalid split for source {source!r}: the run that trained this model kept no test rows "
                            "(test_size: 0), so every row of its source was seen in training; allowed: --split all "
                            "(optimistic), or another source")
        stored = (self.meta.get("split") or {}).get("test_digest")
        if stored is not None and stored != split_digest(data.test):
            raise DataError(f"source {source!r} changed since the model was trained: its re-created test split "
                            f"({len(data.test)} rows) differs from the one the run held out; allowed: the unchanged "
                            "source, or --split all")
        raw_y = data.test.y.numpy()
        if self.task == "regression":
            raw_y = np.asarray(self.preprocessor.inverse_transform_target(raw_y))
        else:
            raw_y = raw_y.astype(np.int64)
        scored = (f"the {len(data.test)} test rows the run held out of {source!r} (re-created: same recipe and seed"
                  + (", digest checked)" if stored else ")"))
        return None, raw_y, data.test.x, {"split": "test", "scored": scored}

    def encode_labels(self, raw_y: Any) -> torch.Tensor:
        """Raw labels (names or indices) -> the int64 class indices the model was trained on."""
        y = np.asarray(raw_y).reshape(len(raw_y), -1)
        if self.task == "regression":  # the target's own units
            return torch.as_tensor(y.astype(np.float32), dtype=torch.float32)
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


EVAL_SPLITS = ("unseen", "test", "all")
# the recipe's data options a source of this form takes when evaluate reads it (others: folder, image)
_EVAL_OPTIONS = {"csv": ("target", "drop_columns", "delimiter"), "text-csv": ("target", "text_column", "delimiter")}


def same_source(source: Any, other: Any) -> bool:
    """Whether two source strings name the same data (prefix case, spaces, a file's path resolved)."""
    if not isinstance(source, str) or not isinstance(other, str):
        return False
    a, b = (s.strip().partition(":") for s in (source, other))
    if a[0].lower() != b[0].lower() or bool(a[1]) != bool(b[1]):
        return False
    if a[0].lower() in ("csv", "npz", "idx", "text-csv"):
        return Path(a[2].strip()).expanduser().resolve() == Path(b[2].strip()).expanduser().resolve()
    return a[2].strip().lower() == b[2].strip().lower()


def match_columns(names: list[str], columns: list[str], *, ignore: set[str], where: str) -> list[int]:
    """Positions in ``names`` of each of ``columns`` (the model's features, in order); a missing
    or unknown column is a DataError naming it (``ignore``: names allowed besides the features)."""
    missing = [c for c in columns if c not in names]
    unknown = [n for n in names if n not in columns and n not in ignore]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
        raise DataError(f"{where}: {'; '.join(parts)}; allowed: the model's columns {', '.join(map(repr, columns))} "
                        "(matched by name, in any order)")
    return [names.index(c) for c in columns]


def split_digest(split: Any) -> str:
    """A digest of a prepared split's inputs and targets (to check that a re-created split is the same)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for t in (split.x, split.y):
        h.update(str(tuple(t.shape)).encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()


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
