"""Make ``_transfer_helpers.py`` importable, and a honing model folder to transfer from."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _transfer_helpers import fit  # noqa: E402


@dataclass
class HonedFolder:
    """A honing model folder (an iris MLP, hidden [8]), the trained model and its data."""

    path: Path
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor


@pytest.fixture(scope="session")
def honed_folder(tmp_path_factory) -> HonedFolder:
    from honing.data import load
    from honing.models import create_model
    from honing.pipeline import save_model

    ds = load("sklearn:iris", seed=0)
    recipe = {"model": {"name": "mlp", "hidden": [8]}}
    model = create_model("mlp", data=ds, seed=0, hidden=[8])
    fit(model, (ds.train.x, ds.train.y), epochs=5, weight_decay=0.0)
    model.eval()
    folder = tmp_path_factory.mktemp("run") / "model"
    save_model(folder, model, recipe=recipe, preprocessor=ds.preprocessor, task=ds.task,
               input_shape=ds.input_shape, num_outputs=ds.num_outputs, class_names=ds.class_names)
    return HonedFolder(folder, model, ds.train.x, ds.train.y)
