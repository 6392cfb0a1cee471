"""TextPreprocessor: strings -> int64 token ids ``(N, L)`` with a Hugging Face tokenizer.

Nothing is fitted: the vocabulary comes with the tokenizer. Rows are truncated at
``max_length`` and padded with the tokenizer's pad id up to the longest row of the call
(at most ``max_length``), so short snippets stay cheap. A model finds the padding with
``x != pad_token_id``. ``transformers`` is imported lazily, offline only (never a download).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from honing._core import ConfigError, DataError, check_int
from honing.data._preprocess import Preprocessor

DEFAULT_MAX_LENGTH = 128
MAX_LENGTH_RANGE = (2, 4096)
TOKENIZER_FOLDER = "tokenizer"  # where save_tokenizer puts the files, relative to a model folder


def _is_tokenizer_object(value: Any) -> bool:
    return callable(value) and hasattr(value, "pad_token_id") and hasattr(value, "save_pretrained")


def load_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """A Hugging Face tokenizer from local files only (``AutoTokenizer``, offline)."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(
            f"tokenizer folder not found: {str(path)!r} (a folder with Hugging Face tokenizer files, "
            "such as tokenizer.json or vocab.txt, and tokenizer_config.json)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            f"text sources need the transformers package for the tokenizer ({exc}): pip install 'honing[transfer]'"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot load a tokenizer from folder {str(path)!r}: {exc}") from exc


class TextPreprocessor(Preprocessor):
    """Text rows (str) -> int64 token ids ``(N, L)``, ``L`` = the longest row of the call, at most ``max_length``.

    ``tokenizer``: a folder with Hugging Face tokenizer files, or a loaded tokenizer object
    (its ``name_or_path`` is the path recorded in :meth:`state_dict`). ``input_shape`` is
    ``(max_length,)``; ``pad_token_id`` marks padding.
    """

    kind = "text"

    def __init__(
        self,
        tokenizer: str | os.PathLike[str] | Any,
        max_length: int = DEFAULT_MAX_LENGTH,
        *,
        scale_target: bool = False,
    ) -> None:
        super().__init__(scale_target=scale_target)
        low, high = MAX_LENGTH_RANGE
        self.max_length = check_int("max_length", max_length, low=low, high=high)
        if isinstance(tokenizer, (str, os.PathLike)):
            self.tokenizer = load_tokenizer(tokenizer)
            self.tokenizer_path = str(tokenizer)
        elif _is_tokenizer_object(tokenizer):
            self.tokenizer = tokenizer
            self.tokenizer_path = str(getattr(tokenizer, "name_or_path", "") or "")
        else:
            raise ConfigError(
                f"invalid tokenizer: got {tokenizer!r}; allowed: a folder with Hugging Face tokenizer files "
                "or a Hugging Face tokenizer object"
            )
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            raise ConfigError(
                f"invalid tokenizer: the tokenizer from {self.tokenizer_path!r} has no pad token; "
                "allowed: a tokenizer with a pad token (set tokenizer.pad_token first)"
            )
        self.pad_token_id = int(pad)

    def _options(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer_path, "max_length": self.max_length, "scale_target": self.scale_target}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.max_length,)

    def unfitted(self) -> TextPreprocessor:
        """Same options and the same tokenizer object (not read again from disk)."""
        return TextPreprocessor(self.tokenizer, self.max_length, scale_target=self.scale_target)

    def _fit_x(self, x: np.ndarray) -> None:
        pass  # nothing to learn: the vocabulary comes with the tokenizer

    def _texts(self, x: np.ndarray) -> list[str]:
        if x.ndim == 0:
            x = x.reshape(1)
        elif x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise DataError(f"expected text rows (a list of strings); got an array of shape {x.shape}")
        bad = [i for i, v in enumerate(x) if not isinstance(v, str)]
        if bad:
            raise DataError(f"expected text rows (strings); row {bad[0]} is a {type(x[bad[0]]).__name__}: {x[bad[0]]!r}")
        return [str(v) for v in x]

    def _transform_x(self, x: np.ndarray) -> np.ndarray:
        texts = self._texts(x)
        if not texts:
            return np.zeros((0, 0), dtype=np.int64)
        enc = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, padding="longest",
            return_attention_mask=False, return_token_type_ids=False,
        )
        return np.asarray(enc["input_ids"], dtype=np.int64)  # (N, L), L <= max_length

    def transform(self, raw_x: Any) -> torch.Tensor:
        """Text rows (a list/array of str, or one str -> one row) -> int64 token ids ``(N, L)``.

        Needs no ``fit``: there are no statistics to learn.
        """
        if isinstance(raw_x, str):
            raw_x = [raw_x]
        return torch.from_numpy(self._transform_x(np.asarray(raw_x, dtype=object)))

    def _stats(self) -> dict[str, Any]:
        return {}

    def _load_stats(self, stats: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """The base fields plus ``tokenizer`` (the folder path) and ``max_length`` at the top level."""
        return {**super().state_dict(), "tokenizer": self.tokenizer_path, "max_length": self.max_length}

    def save_tokenizer(self, folder: str | os.PathLike[str]) -> dict[str, Any]:
        """Write the tokenizer files into ``folder/tokenizer`` and return a state dict that names the
        tokenizer by the relative path ``"tokenizer"``: load it back with
        ``Preprocessor.from_state_dict(state, base_dir=folder)``."""
        target = Path(folder) / TOKENIZER_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(target))
        state = self.state_dict()
        state["tokenizer"] = TOKENIZER_FOLDER
        state["options"] = {**state["options"], "tokenizer": TOKENIZER_FOLDER}
        return state

    @staticmethod
    def resolve_tokenizer(path: str, base_dir: str | os.PathLike[str] | None) -> str:
        """A relative tokenizer path resolved against ``base_dir`` (when given)."""
        if base_dir is None or Path(path).is_absolute():
            return path
        return str(Path(base_dir) / path)

    @classmethod
    def _options_from_state(cls, options: dict[str, Any], state: dict[str, Any],
                            base_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
        """The saved tokenizer folder, resolved against the model folder it was saved in."""
        path = str(state.get("tokenizer", options["tokenizer"]))
        options["tokenizer"] = cls.resolve_tokenizer(path, base_dir)
        options["max_length"] = state.get("max_length", options["max_length"])
        return options
