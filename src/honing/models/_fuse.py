"""Inference-time folding of batch norm into the convolution or linear layer before it.

In eval mode a batch norm is an affine map per channel, so ``bn(conv(x))`` equals one
convolution with rescaled weights and a bias (``torch.nn.utils.fusion``). A folded model
computes the same outputs (to float rounding) with one layer fewer per pair, which matters most
at batch 1, where each layer's fixed cost dominates. It can no longer train as before (the
statistics are frozen into the weights): fold a copy, for inference.

Pairs found: consecutive (Conv2d | Linear, BatchNorm) items of an ``nn.Sequential``, and a
module's ``conv``/``norm`` (or ``linear``/``norm``) attributes, the way honing's blocks name
them. The batch norm is removed from a Sequential, or set to None where its block checks for
None.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

__all__ = ["fold_batch_norm"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _fused(layer: nn.Module, bn: nn.Module) -> nn.Module | None:
    if not isinstance(bn, _BN) or not bn.track_running_stats or bn.running_mean is None:
        return None
    if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
        return fuse_conv_bn_eval(layer, bn)
    if isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
        return fuse_linear_bn_eval(layer, bn)
    return None


def fold_batch_norm(model: nn.Module, *, inplace: bool = False) -> tuple[nn.Module, int]:
    """A copy of ``model`` (in eval mode) with every batch norm that directly follows a
    convolution or linear layer folded into it; returns ``(model, pairs folded)``. A model
    without batch norm comes back as it is (no copy), with 0."""
    if not any(isinstance(m, _BN) for m in model.modules()):
        return model, 0
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    folded = 0
    with torch.no_grad():
        for module in list(model.modules()):
            if isinstance(module, nn.Sequential):
                for i in range(len(module) - 2, -1, -1):  # from the end: deleting keeps earlier indices
                    fused = _fused(module[i], module[i + 1])
                    if fused is not None:
                        module[i] = fused
                        del module[i + 1]  # one call fewer per pair
                        folded += 1
                continue
            norm = getattr(module, "norm", None)
            for name in ("conv", "linear"):
                layer = getattr(module, name, None)
                if layer is None or norm is None:
                    continue
                fused = _fused(layer, norm)
                if fused is not None:
                    setattr(module, name, fused)
                    module.norm = None  # honing's blocks skip a None norm
                    folded += 1
                    break
    return model, folded
