"""Data: sources, preparation fitted on training rows only, splits, k-fold, batched augmentation.

>>> ds = load("sklearn:digits", val_size=0.15, test_size=0.15, scale="standard", seed=0)
>>> ds.train.x.shape, ds.task, ds.num_outputs
(torch.Size([1257, 64]), 'classification', 10)
"""

from __future__ import annotations

from honing.data._augment import Augment, create_augment, list_augmentations, list_transforms
from honing.data._dataset import Dataset, Split, make_split
from honing.data._idx import find_idx_files, parse_idx, read_idx
from honing.data._labels import LabelIssues, find_label_issues, out_of_fold_probabilities
from honing.data._load import load
from honing.data._array import ArrayPreprocessor
from honing.data._preprocess import Preprocessor, TabularPreprocessor
from honing.data._profile import (
    EMBED_DIM,
    PROFILE_VERSION,
    embed,
    embedding_profile,
    feature_profile,
    output_profile,
    prediction_profile,
    project,
)
from honing.data._sources import FASHION_MNIST_CLASSES, RawData, list_sources, read_source
from honing.data._text import TextPreprocessor
from honing.data._transforms import (
    Brightness,
    Contrast,
    CutMix,
    GaussianNoise,
    HorizontalFlip,
    Mixup,
    RandomAffine,
    RandomErasing,
    TabularNoise,
    Transform,
)

__all__ = [
    "ArrayPreprocessor",
    "Augment",
    "Brightness",
    "Contrast",
    "CutMix",
    "Dataset",
    "EMBED_DIM",
    "FASHION_MNIST_CLASSES",
    "GaussianNoise",
    "HorizontalFlip",
    "LabelIssues",
    "Mixup",
    "PROFILE_VERSION",
    "Preprocessor",
    "RandomAffine",
    "RandomErasing",
    "RawData",
    "Split",
    "TabularNoise",
    "TabularPreprocessor",
    "TextPreprocessor",
    "Transform",
    "create_augment",
    "embed",
    "embedding_profile",
    "feature_profile",
    "find_idx_files",
    "find_label_issues",
    "list_augmentations",
    "list_sources",
    "list_transforms",
    "load",
    "make_split",
    "out_of_fold_probabilities",
    "output_profile",
    "parse_idx",
    "prediction_profile",
    "project",
    "read_idx",
    "read_source",
]
