"""A model folder loaded back: predict on raw rows, evaluate on a data source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from honing._core import ConfigError, DataError
from honing.data import Preprocessor


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
    _folded: Any = field(default=None, repr=False, compare=False)  # (weights' versions, folded copy)

    @torch.no_grad()
    def forward_prepared(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs for already-prepared inputs (eval mode, batched), through a copy with
        batch norm folded into the layer before it (the same outputs, fewer layers)."""
        self.model.eval()
        model = self.inference_model()
        outs = [model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, self.num_outputs)

    def inference_model(self) -> nn.Module:
        """``model`` in eval mode with its batch norms folded (``honing.models.fold_batch_norm``);
        the copy is made again when the weights change, and is ``model`` itself when nothing folds."""
        from honing.models import fold_batch_norm

        if not isinstance(self.model, nn.Module):  # an ONNX Runtime session, ...
            return self.model
        state = [(id(t), t._version) for t in (*self.model.parameters(), *self.model.buffers())]
        if self._folded is None or self._folded[0] != state:
            folded, pairs = fold_batch_norm(self.model)
            self._folded = (state, folded if pairs else self.model)
        return self._folded[1]

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

        x, y, described = self.prepared(source, split=split)
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

    def prepared(self, source: str, *, split: str = "unseen") -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
        """The rows ``evaluate`` scores (``split`` as there), prepared as the model sees them, with
        their targets encoded: ``(x, y, {"split", "scored"})``."""
        if split not in EVAL_SPLITS:
            raise ConfigError(f"invalid split: got {split!r}; allowed: {', '.join(map(repr, EVAL_SPLITS))}")
        raw_x, raw_y, x, described = self._rows_to_score(source, split)
        y = self.encode_labels(raw_y)
        if x is None:
            x = self.prepare(self.rows(raw_x, where=f"source {source!r}"))
        return x, y, described

    def read_rows(self, source: str) -> Any:
        """Every raw row of ``source`` (its fixed test set included), in the model's column order
        for a table: what a drift check compares with the training rows."""
        raw_x, _, x, _ = self._rows_to_score(source, "all")
        return raw_x

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
        from honing.recipe import load_args

        args = load_args(self.recipe)
        args.pop("tokenizer", None)
        args.pop("check_labels", None)  # it changes training rows only, never the test split: no need to redo it
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
_EVAL_OPTIONS = {"csv": ("target", "drop_columns", "delimiter"), "text-csv": ("target", "text_column", "delimiter"),
                 "npz": ()}  # arrays come in their own shape


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
