"""honing: optimizing and fine-tuning deep neural networks, from data to a tested model.

The public surface: ``honing.data``, ``honing.models``, ``honing.optim``, ``honing.train``,
``honing.tune``, ``honing.transfer``, ``honing.compress``, ``honing.export``, ``honing.recipe``,
``honing.pipeline`` (``honing.run(recipe)``, what the
``honing run`` command does), and the most used names re-exported here.
"""

from __future__ import annotations

from honing import data, models, optim, train
from honing._core import (
    EnergyMeter,
    ConfigError,
    DataError,
    DivergedError,
    HoningError,
    UnknownNameError,
    seed_everything,
    set_threads,
)
from honing.data import Dataset, Split, create_augment, load
from honing.models import create_model, list_models
from honing.optim import create_optimizer, create_schedule, list_optimizers, list_schedules, lr_find
from honing.pipeline import LoadedModel, RunResult, load_model, run, train_once
from honing.train import Callback, EarlyStopping, FitResult, TrainConfig, Trainer, create_loss

__version__ = "0.1.0"

__all__ = [
    "EnergyMeter",
    "Callback",
    "ConfigError",
    "DataError",
    "Dataset",
    "DivergedError",
    "EarlyStopping",
    "FitResult",
    "HoningError",
    "LoadedModel",
    "RunResult",
    "Split",
    "TrainConfig",
    "Trainer",
    "UnknownNameError",
    "__version__",
    "create_augment",
    "create_loss",
    "create_model",
    "create_optimizer",
    "create_schedule",
    "data",
    "list_models",
    "list_optimizers",
    "list_schedules",
    "load",
    "load_model",
    "lr_find",
    "models",
    "optim",
    "run",
    "seed_everything",
    "set_threads",
    "train",
    "train_once",
]
