"""Few-shot classification: a prototype head on a frozen backbone's embeddings.

Each class's prototype is the mean of the L2-normalised embeddings of its ``shots`` support
examples; a query's logits are ``scale * cos(embedding, prototype)`` (softmax over classes).
No gradient step is taken: the support set is the whole training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError, DataError
from honing.transfer._backbones import device_of
from honing.transfer._model import TransferModel


class PrototypeHead(nn.Module):
    """``logits = scale * normalize(f) @ normalize(prototypes).T``; prototypes are a buffer."""

    def __init__(self, num_classes: int, feature_dim: int, *, scale: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(num_classes, feature_dim))
        self.scale = float(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(features, dim=1) @ F.normalize(self.prototypes, dim=1).T

    @torch.no_grad()
    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> PrototypeHead:
        """Set each class's prototype to the mean normalised embedding of its examples."""
        k = self.prototypes.shape[0]
        missing = sorted(set(range(k)) - set(labels.tolist()))
        if missing:
            raise DataError(f"few-shot support set has no example of classes {missing}")
        f = F.normalize(features.float(), dim=1)
        for c in range(k):
            self.prototypes[c] = f[labels == c].mean(0)
        return self


def support_indices(y: np.ndarray | torch.Tensor, shots: int, *, seed: int = 0) -> np.ndarray:
    """``shots`` row indices per class (seeded), sorted; every class must have that many rows."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if not isinstance(shots, int) or shots < 1:
        raise ConfigError(f"invalid shots: got {shots!r}; allowed: an int >= 1")
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if len(rows) < shots:
            raise DataError(f"few-shot: class {int(c)} has {len(rows)} training rows; shots={shots} needs that many")
        picks.append(rng.choice(rows, size=shots, replace=False))
    return np.sort(np.concatenate(picks))


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Embeddings of ``x`` in batches, eval mode (``model.embed`` or the backbone's forward)."""
    fn = getattr(model, "embed", model)
    was = model.training
    model.eval()
    try:
        device = device_of(model)
        return torch.cat([fn(x[i:i + batch_size].to(device)) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was)


def fit_prototypes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, shots: int | None = None,
                   seed: int = 0, batch_size: int = 256) -> nn.Module:
    """Give ``model`` (a TransferModel) a prototype head fitted on ``shots`` examples per class of
    ``(x, y)`` (all rows when ``shots`` is None); returns the model."""
    if not isinstance(model, TransferModel):
        raise ConfigError(f"fit_prototypes needs a TransferModel; got {type(model).__name__}")
    idx = np.arange(len(y)) if shots is None else support_indices(y, shots, seed=seed)
    idx_t = torch.as_tensor(idx)
    model.freeze_backbone()
    features = embed(model, x[idx_t], batch_size=batch_size)
    head = PrototypeHead(model.num_outputs, model.backbone.feature_dim).to(features.device)
    head.fit(features, y[idx_t].to(features.device))
    model.head = head
    return model
