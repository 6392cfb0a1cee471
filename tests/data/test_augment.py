"""Augment pipelines: seeding, state round trip, the recipe factory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from honing._core import ConfigError, UnknownNameError
from honing.data import (
    Augment,
    CutMix,
    GaussianNoise,
    HorizontalFlip,
    Mixup,
    RandomAffine,
    RandomErasing,
    TabularNoise,
    create_augment,
    list_augmentations,
    list_transforms,
)

SPEC = {"rotation": 10, "translate": [0.1, 0.1], "flip": 0.5, "erasing": 0.25, "mixup": 0.2}


def _batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(n, 1, 12, 12, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_create_augment_from_recipe_dict() -> None:
    aug = create_augment(SPEC, num_classes=10, seed=0)
    kinds = [type(t) for t in aug.transforms]
    assert kinds == [RandomAffine, HorizontalFlip, RandomErasing, Mixup]
    affine = aug.transforms[0]
    assert affine.rotation == 10 and affine.translate == (0.1, 0.1) and affine.scale == (1.0, 1.0)
    assert aug.transforms[3].num_classes == 10 and aug.mixes_labels
    x, y = _batch()
    out, soft = aug(x, y)
    assert out.shape == x.shape and soft.shape == (32, 10)
    torch.testing.assert_close(soft.sum(1), torch.ones(32))


def test_same_seed_same_output_and_state_round_trip(tmp_path: Path) -> None:
    x, y = _batch()
    a, b = create_augment(SPEC, num_classes=10, seed=3), create_augment(SPEC, num_classes=10, seed=3)
    for _ in range(2):
        (xa, ya), (xb, yb) = a(x, y), b(x, y)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = create_augment(SPEC, num_classes=10, seed=4)(x, y)[0]
    assert not torch.equal(other, create_augment(SPEC, num_classes=10, seed=3)(x, y)[0])

    torch.save(a.state_dict(), tmp_path / "aug.pt")
    expected = a(x, y)
    restored = create_augment(SPEC, num_classes=10, seed=99)
    restored.load_state_dict(torch.load(tmp_path / "aug.pt", weights_only=True))
    got = restored(x, y)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_augment_leaves_inputs_and_grad_alone() -> None:
    x, y = _batch()
    x0 = x.clone()
    out, _ = create_augment({"rotation": 5, "noise": 0.1, "brightness": 0.1, "contrast": 0.2})(x, y)
    assert torch.equal(x, x0) and not out.requires_grad


def test_tabular_recipe() -> None:
    aug = create_augment({"tabular_noise": 0.05, "swap_noise": 0.1, "mixup": 0.2}, num_classes=3)
    assert [type(t) for t in aug.transforms] == [TabularNoise, Mixup]
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    out, soft = aug(x, y)
    assert out.shape == (16, 5) and soft.shape == (16, 3)


def test_scale_number_and_off_values() -> None:
    aug = create_augment({"scale": 0.1, "rotation": 0, "flip": None, "contrast": 0.2})
    assert aug.transforms[0].scale == pytest.approx((0.9, 1.1)) and aug.transforms[0].rotation == 0
    assert [type(t).__name__ for t in aug.transforms] == ["RandomAffine", "Contrast"]
    assert len(create_augment({})) == 0 and len(create_augment(None)) == 0


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError, match="'rotate'") as info:
        create_augment({"rotate": 10})
    for key in list_augmentations():
        assert key in str(info.value)
    assert {"rotation", "translate", "flip", "erasing", "mixup", "cutmix", "tabular_noise"} <= set(list_augmentations())
    with pytest.raises(ConfigError, match="mixup"):
        create_augment({"mixup": 0.2, "cutmix": 1.0})
    with pytest.raises(ConfigError, match="rotation"):
        create_augment({"rotation": -5})
    with pytest.raises(ConfigError, match="augment spec"):
        create_augment("rotation")  # type: ignore[arg-type]


def test_list_form() -> None:
    aug = create_augment(
        [{"name": "random_affine", "rotation": 5}, GaussianNoise(0.1), {"name": "cutmix", "alpha": 1.0}],
        num_classes=4, seed=1,
    )
    assert [type(t) for t in aug.transforms] == [RandomAffine, GaussianNoise, CutMix]
    assert aug.transforms[2].num_classes == 4
    assert set(list_transforms()) >= {"random_affine", "mixup", "cutmix", "tabular_noise", "random_erasing"}
    with pytest.raises(UnknownNameError, match="random_afine"):
        create_augment([{"name": "random_afine"}])
    with pytest.raises(ConfigError, match="bogus"):
        create_augment([{"name": "mixup", "bogus": 1}])
    with pytest.raises(ConfigError, match="transforms"):
        Augment([lambda x, y: (x, y)])  # type: ignore[list-item]


def test_vectorized_speed() -> None:
    import time

    aug = create_augment({"rotation": 10, "translate": 0.1, "flip": 0.5, "erasing": 0.5, "mixup": 0.2}, num_classes=10)
    x, y = torch.randn(512, 1, 28, 28), torch.randint(0, 10, (512,))
    aug(x, y)
    start = time.perf_counter()
    aug(x, y)
    assert time.perf_counter() - start < 1.0  # ~40 ms single-threaded; a per-sample loop would be far slower
