"""The ensemble as one ``nn.Module``: members, their weights (or a stacking head), a temperature.

Classification: the output is ``log(sum_i w_i softmax(z_i)) / T``, the log of the weighted
average of the members' probabilities, used as logits (softmax gives the averaged
probabilities back, sharpened or softened by ``T``); with a stacking head, the head's logits
over the members' log-probabilities, divided by ``T``. Regression: ``sum_i w_i y_i`` (or the
head over the members' values). One module, so it trains, evaluates, serves and exports to one
ONNX graph like any model.

A member trained on a cross-validation fold saw inputs scaled by that fold's preprocessing: its
``input_map`` (a per-feature ``x * scale + shift``) turns the model folder's preprocessed
inputs into the fold's, and its ``output_map`` turns a regression fold's scaled targets back.

In a model folder (format ``ensemble``), ``meta.json["compression"]`` lists each member's model
section and which maps it has; the weights of every member, map and head are one
``model.safetensors`` (``members.<i>.model.<name>``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, DataError

MAX_MEMBERS = 256  # what a model folder may ask to build


class Affine(nn.Module):
    """``x * scale + shift`` elementwise (``scale``, ``shift``: the shape of one row)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().float().clone())
        self.register_buffer("shift", shift.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class Member(nn.Module):
    """One model of the ensemble with its optional input and output maps."""

    def __init__(self, model: nn.Module, *, input_map: Affine | None = None, output_map: Affine | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_map = input_map
        self.output_map = output_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_map is not None:
            x = self.input_map(x)
        out = self.model(x)
        return out if self.output_map is None else self.output_map(out)


class EnsembleModel(nn.Module):
    """``members`` combined by ``weights`` (non-negative, summing to 1) or by a stacking ``head``
    (an ``nn.Linear`` over the members' concatenated log-probabilities or values)."""

    def __init__(self, members: Sequence[nn.Module], *, task: str, weights: Sequence[float] | None = None,
                 head: nn.Linear | None = None, temperature: float = 1.0) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ConfigError(f"invalid task: got {task!r}; allowed: classification, regression")
        if not members:
            raise ConfigError("an ensemble needs at least one member; got none")
        if (weights is None) == (head is None):
            raise ConfigError("an ensemble takes weights or a stacking head (exactly one of them)")
        if weights is not None:
            w = torch.as_tensor(list(weights), dtype=torch.float32)
            if len(w) != len(members) or bool((w < 0).any()) or not 0.999 < float(w.sum()) < 1.001:
                raise ConfigError(f"invalid ensemble weights: got {w.tolist()}; allowed: {len(members)} non-negative "
                                  "numbers summing to 1")
            self.register_buffer("weights", w)
        if not temperature > 0:
            raise ConfigError(f"invalid temperature: got {temperature}; allowed: > 0")
        self.task = task
        self.members = nn.ModuleList(m if isinstance(m, Member) else Member(m) for m in members)
        self.head = head
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members])  # (M, N, K)
        if self.task == "classification":
            logp = torch.log_softmax(outs.float(), dim=-1)
            if self.head is not None:
                z = self.head(logp.permute(1, 0, 2).reshape(outs.shape[1], -1))  # (N, M*K) -> (N, K)
            else:
                z = torch.logsumexp(logp + self.weights.clamp_min(1e-30).log()[:, None, None], dim=0)  # (N, K)
            return z / self.temperature
        if self.head is not None:
            return self.head(outs.permute(1, 0, 2).reshape(outs.shape[1], -1))
        return (outs * self.weights[:, None, None]).sum(0)

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's own output (logits or values) for ``x``."""
        return [m(x) for m in self.members]


# --- the model folder format ----------------------------------------------------------------------


def bag(members: Sequence[nn.Module], *, task: str) -> EnsembleModel:
    """The k models of one cross-validated trial as one member: equal weights."""
    return EnsembleModel(members, task=task, weights=[1 / len(members)] * len(members))


def folder_info(model: EnsembleModel, sections: Sequence[dict[str, Any]], extra: Sequence[dict[str, Any]] = ()
                ) -> dict[str, Any]:
    """``meta.json["compression"]`` of a folder holding ``model``: ``sections`` are the members'
    model sections (``{"name": "mlp", ...}``); ``extra`` adds a record per member (its trial).
    A member that is itself a ``bag`` of fold models lists each fold's maps under ``folds``."""

    def maps(member: Member) -> dict[str, bool]:
        return {"input_map": member.input_map is not None, "output_map": member.output_map is not None}

    members = []
    for i, (member, section) in enumerate(zip(model.members, sections, strict=True)):
        record: dict[str, Any] = {"model": dict(section)}
        if isinstance(member.model, EnsembleModel):  # a bag of fold models
            record["folds"] = [maps(m) for m in member.model.members]
        else:
            record.update(maps(member))
        if model.head is None:
            record["weight"] = float(model.weights[i])
        if i < len(extra):
            record.update(extra[i])
        members.append(record)
    params = list(model.parameters())
    info: dict[str, Any] = {"format": "ensemble", "task": model.task, "members": members,
                            "parameters": sum(p.numel() for p in params),
                            "nonzero_parameters": int(sum(int(torch.count_nonzero(p)) for p in params)),
                            "combine": "stacking" if model.head is not None else "weighted average",
                            "temperature": float(model.temperature)}
    if model.head is not None:
        info["head"] = [model.head.out_features, model.head.in_features]
    return info


def load_ensemble(folder: Path, meta: dict[str, Any], build: Any) -> EnsembleModel:
    """Rebuild an ``ensemble`` folder's model (the format's loader; ``build`` is not used: each
    member is built from its own model section)."""
    from safetensors.torch import load_file

    from honing.models import create_model

    info = meta["compression"]
    task = info.get("task", meta["task"])
    members = info.get("members")
    if not isinstance(members, list) or not 0 < len(members) <= MAX_MEMBERS:
        raise DataError(f"compression.members must list 1 to {MAX_MEMBERS} members")
    shape, k = tuple(meta["input_shape"]), int(meta["num_outputs"])

    def one(section: dict[str, Any], record: dict[str, Any]) -> Member:
        kw = {key: v for key, v in section.items() if key != "name"}
        model = create_model(section["name"], input_shape=shape, num_outputs=k, **kw)
        ones = torch.ones(shape)
        return Member(model, input_map=Affine(ones, ones) if record.get("input_map") else None,
                      output_map=Affine(torch.ones(k), torch.ones(k)) if record.get("output_map") else None)

    built: list[nn.Module] = []
    count = 0
    for i, record in enumerate(members):
        section = record.get("model") if isinstance(record, dict) else None
        if not isinstance(section, dict) or not isinstance(section.get("name"), str):
            raise DataError(f"compression.members[{i}].model must be a model section with a name")
        folds = record.get("folds")
        if folds is not None:
            if not isinstance(folds, list) or not 0 < len(folds) <= MAX_MEMBERS:
                raise DataError(f"compression.members[{i}].folds must list 1 to {MAX_MEMBERS} folds")
            count += len(folds)
            built.append(Member(bag([one(section, f if isinstance(f, dict) else {}) for f in folds], task=task)))
        else:
            count += 1
            built.append(one(section, record))
        if count > MAX_MEMBERS:
            raise DataError(f"the ensemble has more than {MAX_MEMBERS} models")
    head = None
    if info.get("head") is not None:
        out_f, in_f = (int(v) for v in info["head"])
        head = nn.Linear(in_f, out_f)
    weights = None if head is not None else [float(r.get("weight", 0.0)) for r in members]
    model = EnsembleModel(built, task=task, weights=weights, head=head, temperature=float(info.get("temperature", 1.0)))
    state = load_file(str(Path(folder) / "model.safetensors"))
    expected = model.state_dict()
    if set(state) != set(expected) or any(tuple(state[n].shape) != tuple(t.shape) for n, t in expected.items()):
        missing = sorted(set(expected) - set(state))[:5]
        raise DataError(f"the tensors do not match the ensemble's members (missing: {', '.join(missing) or 'none'})")
    model.load_state_dict(state)
    return model
