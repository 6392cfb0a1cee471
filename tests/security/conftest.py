"""Fixtures of the hostile-input and fault tests: a real model folder and a canary file that any
foreign code these tests smuggle in would create."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)  # _evil.py importable under --import-mode=importlib
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import honing
from honing.data import load
from honing.models import create_model
from honing.pipeline import save_model


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> Path:
    """An untrained iris MLP saved as honing saves models (weights, recipe, preprocessing, meta)."""
    honing.seed_everything(0)
    data = load("sklearn:iris", val_size=0.2, test_size=0.2, scale="standard", seed=0)
    model = create_model("mlp", data=data, hidden=[8])
    folder = tmp_path_factory.mktemp("model") / "model"
    recipe = {"name": "iris", "data": {"source": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]}}
    return save_model(folder, model, recipe=recipe, preprocessor=data.preprocessor, task=data.task,
                      input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names)


@pytest.fixture
def folder_copy(model_folder, tmp_path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(model_folder, out)
    return out


@pytest.fixture
def canary(tmp_path) -> Path:
    return tmp_path / "canary"
