"""Each transform: shapes and labels kept, seeded, identity settings, geometry, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from honing._core import ConfigError
from honing.data import (
    Brightness,
    Contrast,
    CutMix,
    GaussianNoise,
    HorizontalFlip,
    Mixup,
    RandomAffine,
    RandomErasing,
    TabularNoise,
)
from honing.data._transforms import affine_theta

IMAGE_TRANSFORMS = [
    RandomAffine(rotation=15, shear=5, scale=(0.9, 1.1), translate=(0.1, 0.1)),
    HorizontalFlip(p=0.5),
    Brightness(0.2),
    Contrast((0.7, 1.3)),
    GaussianNoise(0.1),
    RandomErasing(p=0.7),
]


def _batch(n: int = 16, c: int = 2, h: int = 10, w: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.randn(n, c, h, w, generator=g), torch.randint(0, 5, (n,), generator=g)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("t", IMAGE_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_non_mixing_keep_shape_and_labels_and_are_seeded(t) -> None:
    x, y = _batch()
    x0, y0 = x.clone(), y.clone()
    out, yo = t(x, y, _gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert yo is y and torch.equal(y, y0)
    assert torch.equal(x, x0)  # input not changed in place
    assert not torch.equal(out, x)
    again, _ = t(x, y, _gen(0))
    other, _ = t(x, y, _gen(1))
    assert torch.equal(out, again) and not torch.equal(out, other)


@pytest.mark.parametrize("t", [RandomAffine(), RandomAffine(rotation=30, p=0.0), HorizontalFlip(p=0.0), Brightness(0.0),
                               Contrast((1.0, 1.0)), GaussianNoise(0.0), RandomErasing(p=0.0), TabularNoise(0.0, 0.0)],
                         ids=repr)
def test_identity_settings_leave_x_unchanged(t) -> None:
    x, y = _batch()
    if isinstance(t, TabularNoise):
        x = x.flatten(1)
    out, yo = t(x, y, _gen())
    torch.testing.assert_close(out, x)
    assert torch.equal(yo, y)


def test_affine_grid_path_is_nearly_identity_at_zero_change() -> None:
    x, y = _batch()
    out, _ = RandomAffine(scale=(1.0, 1.0 + 1e-9))(x, y, _gen())  # goes through grid_sample
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_affine_theta_geometry() -> None:
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 0, :] = 1  # top row
    quarter = torch.tensor([math.pi / 2], dtype=torch.float64)
    grid = F.affine_grid(affine_theta(quarter, zero, one, zero, zero, height=5, width=5).float(), [1, 1, 5, 5],
                         align_corners=False)
    rotated = F.grid_sample(img, grid, align_corners=False)
    torch.testing.assert_close(rotated, torch.rot90(img, k=-1, dims=(2, 3)), atol=1e-5, rtol=0)  # clockwise
    shift = torch.tensor([0.2], dtype=torch.float64)  # one pixel of five, to the right
    grid = F.affine_grid(affine_theta(zero, zero, one, shift, zero, height=5, width=5).float(), [1, 1, 5, 5],
                         align_corners=False)
    moved = F.grid_sample(img.transpose(2, 3), grid, align_corners=False)
    torch.testing.assert_close(moved[0, 0, :, 1], torch.ones(5), atol=1e-5, rtol=0)


def test_affine_zoom_out_shrinks_the_image() -> None:
    x = torch.ones(2, 1, 8, 8)
    out, _ = RandomAffine(scale=(0.5, 0.5))(x, torch.zeros(2), _gen())
    torch.testing.assert_close(out[:, :, 2:6, 2:6], torch.ones(2, 1, 4, 4))
    assert float(out[:, :, 0, :].abs().max()) == 0.0 and float(out[:, :, :, 7].abs().max()) == 0.0


def test_flip_always_mirrors() -> None:
    x, y = _batch()
    out, _ = HorizontalFlip(p=1.0)(x, y, _gen())
    assert torch.equal(out, x.flip(-1))


def test_erasing_makes_one_rectangle_per_sample() -> None:
    x = torch.zeros(64, 3, 16, 16)
    t = RandomErasing(p=1.0, area=(0.1, 0.2), aspect=(0.5, 2.0), value=7.0)
    out, _ = t(x, torch.zeros(64), _gen())
    mask = out == 7.0
    assert torch.equal(mask[:, :1].expand_as(mask), mask)  # same box on every channel
    m = mask[:, 0]
    rows, cols = m.any(2), m.any(1)
    area = m.sum((1, 2)).float()
    assert torch.equal(area, (rows.sum(1) * cols.sum(1)).float())  # a filled rectangle
    frac = area / 256
    assert float(frac.min()) > 0.03 and float(frac.max()) < 0.3
    half, _ = RandomErasing(p=0.5, value=1.0)(x, torch.zeros(64), _gen())
    erased = (half != 0).flatten(1).any(1).float().mean()
    assert 0.25 < float(erased) < 0.75


def test_brightness_contrast_statistics() -> None:
    x, y = _batch()
    out, _ = Brightness(0.5)(x, y, _gen())
    shift = (out - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift)) and float(shift.abs().max()) <= 0.5
    out, _ = Contrast((2.0, 2.0))(x, y, _gen())
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std((1, 2, 3)), 2 * x.std((1, 2, 3)), atol=1e-4, rtol=1e-4)


def test_tabular_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 6, generator=g), torch.randint(0, 2, (200,), generator=g)
    out, yo = TabularNoise(std=0.0, swap=0.5)(x, y, _gen())
    assert yo is y and out.shape == x.shape
    for j in range(6):  # swapped cells come from the same column
        assert set(out[:, j].tolist()) <= set(x[:, j].tolist())
    changed = float((out != x).float().mean())
    assert 0.35 < changed < 0.6
    noisy, _ = TabularNoise(std=0.1)(x, y, _gen())
    assert 0.08 < float((noisy - x).std()) < 0.12
    with pytest.raises(ConfigError, match="tabular"):
        TabularNoise(0.1)(torch.zeros(2, 1, 3, 3), y[:2], _gen())


@pytest.mark.parametrize("t", [Mixup(alpha=0.4, num_classes=5), CutMix(alpha=1.0, num_classes=5)], ids=repr)
def test_mixing_gives_soft_targets_that_sum_to_one(t) -> None:
    x, y = _batch(32)
    out, soft = t(x, y, _gen())
    assert out.shape == x.shape and soft.shape == (32, 5) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(32))
    assert (soft >= 0).all()
    assert float(soft.gather(1, y[:, None]).min()) < 1.0  # some rows really are mixed
    again, soft2 = t(x, y, _gen())
    assert torch.equal(out, again) and torch.equal(soft, soft2)
    soft_in = F.one_hot(y, 5).float()
    _, soft3 = t(x, soft_in, _gen())  # already soft targets: mixed as they are
    torch.testing.assert_close(soft3, soft)


def test_mixup_on_tabular_and_lambda_consistency() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    out, soft = Mixup(alpha=1.0, num_classes=3)(x, y, _gen(2))
    assert out.shape == (64, 4)
    lam = float(soft.gather(1, y[:, None]).max())  # rows mixed with their own class have weight 1
    assert 0.0 <= lam <= 1.0
    skipped_x, skipped_y = Mixup(alpha=1.0, num_classes=3, p=0.0)(x, y, _gen())
    assert torch.equal(skipped_x, x) and torch.equal(skipped_y, F.one_hot(y, 3).float())
    with pytest.raises(ConfigError, match="num_classes"):
        Mixup(alpha=0.2)(x, y, _gen())


def test_cutmix_pastes_one_box() -> None:
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 12, 12).contiguous()
    y = torch.arange(8)
    out, soft = CutMix(alpha=1.0, num_classes=8)(x, y, _gen(4))
    changed = (out != x)[:, 0]
    area = changed.flatten(1).float().mean(1)
    own = soft.gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(own, 1 - area)  # label weight follows the pasted area


@pytest.mark.parametrize(("make", "word"), [
    (lambda: RandomAffine(rotation=-1), "rotation"),
    (lambda: RandomAffine(scale=(1.2, 0.8)), "scale"),
    (lambda: RandomAffine(translate=(0.1,)), "translate"),
    (lambda: RandomAffine(p=1.5), "p"),
    (lambda: RandomAffine(padding_mode="wrap"), "padding_mode"),
    (lambda: HorizontalFlip(p=-0.1), "p"),
    (lambda: Brightness(-1), "delta"),
    (lambda: Contrast((1.2, 0.8)), "range"),
    (lambda: GaussianNoise("big"), "std"),
    (lambda: RandomErasing(area=(0.0, 0.5)), "area"),
    (lambda: RandomErasing(aspect=(0.0, 1.0)), "aspect"),
    (lambda: Mixup(alpha=0), "alpha"),
    (lambda: CutMix(num_classes=0), "num_classes"),
    (lambda: TabularNoise(swap=1.0), "swap"),
])
def test_parameters_validated(make, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        make()


def test_image_transforms_reject_tabular_batches() -> None:
    x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
    for t in (RandomAffine(rotation=5), HorizontalFlip(), RandomErasing(), CutMix(num_classes=2)):
        with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
            t(x, y, _gen())
