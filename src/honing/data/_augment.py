"""Augment: a seeded pipeline of batched transforms, and ``create_augment`` from a recipe spec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from honing._core import ConfigError, Registry, check_int
from honing.data._transforms import (
    TRANSFORMS,
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

transforms: Registry[Transform] = Registry("augmentation transform")
for _cls in TRANSFORMS:
    transforms.register(_cls.name, _cls, description=(_cls.__doc__ or "").split("\n")[0])

# recipe key -> what it sets (the order of this dict is the order transforms are applied in)
AUGMENT_KEYS: dict[str, str] = {
    "rotation": "RandomAffine rotation, degrees",
    "shear": "RandomAffine shear, degrees",
    "scale": "RandomAffine zoom range [lo, hi] (a number s: [1-s, 1+s])",
    "translate": "RandomAffine shift [fx, fy] as fractions of width/height (a number: both)",
    "flip": "HorizontalFlip probability",
    "brightness": "Brightness delta",
    "contrast": "Contrast range [lo, hi] (a number c: [1-c, 1+c])",
    "erasing": "RandomErasing probability",
    "noise": "GaussianNoise std",
    "tabular_noise": "TabularNoise std (Gaussian)",
    "swap_noise": "TabularNoise swap probability",
    "mixup": "Mixup alpha",
    "cutmix": "CutMix alpha",
}


def list_augmentations() -> list[str]:
    """The keys ``create_augment`` accepts in its dict form."""
    return sorted(AUGMENT_KEYS)


def list_transforms() -> list[str]:
    """Transform names for the list form of ``create_augment`` (``{"name": ..., **params}``)."""
    return transforms.names()


class Augment:
    """Callable ``(x, y) -> (x, y)`` applying ``transforms`` in order to a training batch.

    It owns a CPU ``torch.Generator`` seeded with ``seed``; ``state_dict()`` holds its state (a
    uint8 tensor, loadable with ``torch.load(weights_only=True)``) so a resumed run draws the
    same numbers. Runs under ``torch.no_grad()``.
    """

    def __init__(self, transforms: Sequence[Transform], *, seed: int = 0) -> None:
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise ConfigError(f"invalid transforms[{i}]: got {t!r}; allowed: honing.data transforms ({', '.join(list_transforms())})")
        self.transforms = transforms
        self.seed = check_int("seed", seed, low=0)
        self.generator = torch.Generator().manual_seed(self.seed)

    @property
    def mixes_labels(self) -> bool:
        """True when the output targets are soft ``(N, num_classes)`` (mixup / cutmix)."""
        return any(t.mixes_labels for t in self.transforms)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            for t in self.transforms:
                x, y = t(x, y, self.generator)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Augment({self.transforms!r}, seed={self.seed})"


def _as_pair(key: str, value: Any, around: float | None) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (around - value, around + value) if around is not None else (float(value), float(value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (value[0], value[1])
    raise ConfigError(f"invalid augment {key!r}: got {value!r}; allowed: a number or a pair [low, high]")


def _from_dict(spec: dict[str, Any], num_classes: int | None) -> list[Transform]:
    unknown = [k for k in spec if k not in AUGMENT_KEYS]
    if unknown:
        raise ConfigError(f"invalid augment key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(list_augmentations())}")
    on = {k: v for k, v in spec.items() if v not in (None, 0, 0.0, False)}
    if "mixup" in on and "cutmix" in on:
        raise ConfigError("invalid augment: got both 'mixup' and 'cutmix'; allowed: one of them")
    out: list[Transform] = []
    if on.keys() & {"rotation", "shear", "scale", "translate"}:
        out.append(RandomAffine(
            rotation=on.get("rotation", 0.0),
            shear=on.get("shear", 0.0),
            scale=_as_pair("scale", on["scale"], 1.0) if "scale" in on else (1.0, 1.0),
            translate=_as_pair("translate", on["translate"], None) if "translate" in on else (0.0, 0.0),
        ))
    if "flip" in on:
        out.append(HorizontalFlip(p=on["flip"]))
    if "brightness" in on:
        out.append(Brightness(delta=on["brightness"]))
    if "contrast" in on:
        out.append(Contrast(range=on["contrast"]))
    if "erasing" in on:
        out.append(RandomErasing(p=on["erasing"]))
    if "noise" in on:
        out.append(GaussianNoise(std=on["noise"]))
    if "tabular_noise" in on or "swap_noise" in on:
        out.append(TabularNoise(std=on.get("tabular_noise", 0.0), swap=on.get("swap_noise", 0.0)))
    if "mixup" in on:
        out.append(Mixup(alpha=on["mixup"], num_classes=num_classes))
    if "cutmix" in on:
        out.append(CutMix(alpha=on["cutmix"], num_classes=num_classes))
    return out


def _from_list(spec: list[Any], num_classes: int | None) -> list[Transform]:
    out: list[Transform] = []
    for i, item in enumerate(spec):
        if isinstance(item, Transform):
            out.append(item)
            continue
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(
                f"invalid augment[{i}]: got {item!r}; allowed: a transform or a dict {{'name': ..., **params}} "
                f"with name in {', '.join(list_transforms())}"
            )
        params = {k: v for k, v in item.items() if k != "name"}
        cls = transforms.get(item["name"])
        if cls.mixes_labels and "num_classes" not in params:
            params["num_classes"] = num_classes
        try:
            out.append(cls(**params))
        except TypeError as exc:
            raise ConfigError(f"invalid augment[{i}] ({item['name']!r}) parameters {sorted(params)}: {exc}") from None
    return out


def create_augment(
    spec: dict[str, Any] | list[Any] | None, *, num_classes: int | None = None, seed: int = 0
) -> Augment:
    """An :class:`Augment` from a recipe spec.

    Dict form, e.g. ``{"rotation": 10, "translate": [0.1, 0.1], "flip": 0.5, "erasing": 0.25,
    "mixup": 0.2}`` (keys: :func:`list_augmentations`; 0 or None turns a key off; the affine
    keys make one RandomAffine). List form: transforms or ``{"name": "random_affine", ...}``
    dicts (names: :func:`list_transforms`), applied in order. ``num_classes`` goes to mixup/cutmix.
    """
    num_classes = check_int("num_classes", num_classes, low=1, allow_none=True)
    if spec is None:
        return Augment([], seed=seed)
    if isinstance(spec, dict):
        return Augment(_from_dict(spec, num_classes), seed=seed)
    if isinstance(spec, (list, tuple)):
        return Augment(_from_list(list(spec), num_classes), seed=seed)
    raise ConfigError(f"invalid augment spec: got {spec!r}; allowed: a dict of {', '.join(list_augmentations())}, or a list of transforms")
