"""Schedules: lr trajectories, warm-up, plateau, state round trip, per-group ratios."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from honing._core import ConfigError, HoningError, UnknownNameError
from honing.optim import SCHEDULES, Schedule, create_schedule, list_schedules

EPOCHS, SPE = 6, 5
TOTAL = EPOCHS * SPE


def _optimizer(lrs=(0.1,)) -> torch.optim.Optimizer:
    groups = [{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _run(sched: Schedule, steps: int, metrics=None) -> list[list[float]]:
    """Drive like the Trainer: optimizer step, then sched.step(); epoch_end at each epoch boundary."""
    out = []
    metrics = iter(metrics or [])
    for i in range(steps):
        out.append([g["lr"] for g in sched.optimizer.param_groups])
        sched.optimizer.step()
        sched.step()
        if (sched.last_step % SPE) == 0:
            sched.epoch_end(next(metrics, 1.0) if sched.monitor else None)
    return out


def test_registry_has_all_required_names():
    assert {"constant", "step", "multistep", "exponential", "cosine", "cyclic", "onecycle", "plateau"} <= set(
        list_schedules()
    )
    assert list_schedules() == SCHEDULES.names()


def _kwargs(name):
    return {"multistep": {"milestones": [2, 4]}, "plateau": {"patience": 1}}.get(name, {})


@pytest.mark.parametrize("name", list_schedules())
def test_state_dict_round_trip_continues_identically(name):
    a = create_schedule(_optimizer((0.1, 0.01)), name, epochs=EPOCHS, steps_per_epoch=SPE, warmup_steps=3, **_kwargs(name))
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 1.0]
    _run(a, 12, metrics)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = create_schedule(_optimizer((0.1, 0.01)), name, epochs=EPOCHS, steps_per_epoch=SPE, warmup_steps=3, **_kwargs(name))
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.get_last_lr() == a.get_last_lr()
    assert [g["lr"] for g in b.optimizer.param_groups] == a.get_last_lr()
    rest = [0.99, 1.0, 1.0, 1.0]
    assert _run(a, 18, rest) == _run(b, 18, rest)
    with pytest.raises(HoningError):
        b.load_state_dict({**a.state_dict(), "name": "other"})


@pytest.mark.parametrize("name", list_schedules())
def test_per_group_lrs_keep_their_ratios(name):
    sched = create_schedule(_optimizer((0.1, 0.025)), name, epochs=EPOCHS, steps_per_epoch=SPE, warmup_steps=4,
                            **_kwargs(name))
    for lr_top, lr_low in _run(sched, TOTAL, [1.0] * EPOCHS)[1:]:
        assert lr_low == pytest.approx(0.25 * lr_top, rel=1e-12)
        assert math.isfinite(lr_top) and lr_top >= 0


@pytest.mark.parametrize("name", list_schedules())
def test_warmup_rises_linearly_from_zero(name):
    sched = create_schedule(_optimizer(), name, epochs=EPOCHS, steps_per_epoch=SPE, warmup_steps=8, **_kwargs(name))
    plain = create_schedule(_optimizer(), name, epochs=EPOCHS, steps_per_epoch=SPE, **_kwargs(name))
    assert sched.lr_at(0) == [0.0]
    for s in range(8):
        # warm-up multiplies the schedule's own value; cosine/onecycle start after the warm-up
        target = plain.lr_at(0 if name in ("cosine", "onecycle") else s)[0]
        assert sched.lr_at(s)[0] == pytest.approx(target * s / 8)
    assert sched.get_last_lr() == [0.0]


def test_constant_warmup_exact_values_and_start_factor():
    sched = create_schedule(_optimizer(), "constant", epochs=2, steps_per_epoch=5, warmup_steps=4)
    assert [round(v[0], 12) for v in _run(sched, 10)] == [0.0, 0.025, 0.05, 0.075] + [0.1] * 6
    sched = create_schedule(_optimizer(), "constant", epochs=2, steps_per_epoch=5, warmup_epochs=0.8,
                            warmup_start_factor=0.2)
    assert sched.warmup_steps == 4 and sched.lr_at(0)[0] == pytest.approx(0.02) and sched.lr_at(4)[0] == 0.1


def test_cosine_ends_at_min_lr_and_halfway_at_midpoint():
    sched = create_schedule(_optimizer(), "cosine", epochs=EPOCHS, steps_per_epoch=SPE, warmup_steps=10, min_lr=0.01)
    assert sched.lr_at(10)[0] == pytest.approx(0.1)  # peak right after warm-up
    assert sched.lr_at(20)[0] == pytest.approx(0.055)  # half-way through the cosine part
    lrs = [v[0] for v in _run(sched, TOTAL)]
    assert sched.get_last_lr()[0] == pytest.approx(0.01) and sched.last_step == TOTAL
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # non-increasing after warm-up
    eta = create_schedule(_optimizer(), "cosine", epochs=1, steps_per_epoch=4, eta_min=0.02)
    assert eta.lr_at(4)[0] == pytest.approx(0.02)


def test_step_halves_at_the_epoch_boundary():
    sched = create_schedule(_optimizer(), "step", epochs=EPOCHS, steps_per_epoch=SPE, step_size=2, gamma=0.5)
    lrs = [v[0] for v in _run(sched, TOTAL)]
    assert lrs[: 2 * SPE] == [0.1] * (2 * SPE)
    assert lrs[2 * SPE] == pytest.approx(0.05) and lrs[4 * SPE] == pytest.approx(0.025)


def test_multistep_and_exponential():
    ms = create_schedule(_optimizer(), "multistep", epochs=EPOCHS, steps_per_epoch=SPE, milestones=[1, 3], gamma=0.1)
    assert [ms.lr_at(s)[0] for s in (4, 5, 14, 15)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    ex = create_schedule(_optimizer(), "exponential", epochs=EPOCHS, steps_per_epoch=SPE, gamma=0.5)
    assert [ex.lr_at(s)[0] for s in (0, 4, 5, 10)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_cyclic_triangular_shapes():
    tri = create_schedule(_optimizer(), "cyclic", epochs=EPOCHS, steps_per_epoch=SPE, base_lr=0.01, max_lr=0.1,
                          step_size_up=4)
    assert [tri.lr_at(s)[0] for s in (0, 2, 4, 6, 8, 12)] == pytest.approx([0.01, 0.055, 0.1, 0.055, 0.01, 0.1])
    tri2 = create_schedule(_optimizer(), "cyclic", epochs=EPOCHS, steps_per_epoch=SPE, base_lr=0.01, max_lr=0.1,
                           step_size_up_epochs=0.8, mode="triangular2")
    assert tri2.lr_at(4)[0] == pytest.approx(0.1) and tri2.lr_at(12)[0] == pytest.approx(0.055)
    exp = create_schedule(_optimizer(), "cyclic", epochs=EPOCHS, steps_per_epoch=SPE, base_lr=0.01, max_lr=0.1,
                          step_size_up=4, mode="exp_range", gamma=0.9)
    assert exp.lr_at(4)[0] == pytest.approx(0.01 + 0.09 * 0.9**4)


def test_onecycle_goes_up_then_far_down():
    sched = create_schedule(_optimizer(), "onecycle", epochs=EPOCHS, steps_per_epoch=SPE, max_lr=1.0, pct_start=0.3)
    lrs = [sched.lr_at(s)[0] for s in range(TOTAL)]
    peak = int(max(range(TOTAL), key=lambda s: lrs[s]))
    assert lrs[0] == pytest.approx(1.0 / 25) and lrs[peak] == pytest.approx(1.0, rel=1e-2)
    assert abs(peak - 0.3 * (TOTAL - 1)) <= 1
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)


def test_plateau_reduces_after_patience_then_cooldown():
    sched = create_schedule(_optimizer(), "plateau", epochs=EPOCHS, steps_per_epoch=SPE, patience=2, factor=0.5,
                            cooldown=1, min_lr=0.02)
    assert sched.monitor == "val_loss"
    lrs = []
    for metric in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        sched.epoch_end(metric)
        lrs.append(sched.get_last_lr()[0])
    # epoch 0 best; epochs 1-2 bad (<= patience); epoch 3 reduces; 1 cooldown epoch; 3 more bad -> reduce
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    for _ in range(10):
        sched.epoch_end(2.0)
    assert sched.get_last_lr()[0] == pytest.approx(0.02)  # min_lr floor
    assert [g["lr"] for g in sched.optimizer.param_groups] == sched.get_last_lr()


def test_plateau_mode_max_and_warmup():
    sched = create_schedule(_optimizer(), "plateau", epochs=EPOCHS, steps_per_epoch=SPE, monitor="val_accuracy",
                            mode="max", patience=0, warmup_steps=4)
    assert sched.monitor == "val_accuracy" and sched.get_last_lr() == [0.0]
    sched.step()
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.05)
    sched.epoch_end(0.5)
    sched.epoch_end(0.6)  # improved
    assert sched.get_last_lr()[0] == pytest.approx(0.05)
    sched.epoch_end(0.6)  # not improved, patience 0 -> reduce, warm-up still applies
    assert sched.get_last_lr()[0] == pytest.approx(0.005)
    for _ in range(2):
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="val_accuracy"):
        sched.epoch_end(None)


def test_other_schedules_ignore_epoch_end_metric():
    sched = create_schedule(_optimizer(), "cosine", epochs=2, steps_per_epoch=3)
    assert sched.monitor is None
    sched.epoch_end(None)
    assert sched.epoch == 1 and sched.get_last_lr() == [0.1]


def test_second_schedule_on_same_optimizer_uses_initial_lr():
    opt = _optimizer()
    first = create_schedule(opt, "constant", epochs=1, steps_per_epoch=4, warmup_steps=4)
    assert opt.param_groups[0]["lr"] == 0.0
    second = create_schedule(opt, "step", epochs=1, steps_per_epoch=4)
    assert first.base_lrs == second.base_lrs == [0.1] and opt.param_groups[0]["lr"] == 0.1


def test_bad_arguments():
    opt = _optimizer()
    with pytest.raises(ConfigError, match=r"invalid argument 'min_lrr' for schedule 'cosine'.*allowed:.*min_lr"):
        create_schedule(opt, "cosine", epochs=2, steps_per_epoch=3, min_lrr=0.0)
    with pytest.raises(UnknownNameError, match=r"'cosine'"):
        create_schedule(opt, "cosin", epochs=2, steps_per_epoch=3)
    with pytest.raises(ConfigError, match="invalid epochs .*got 0"):
        create_schedule(opt, "constant", epochs=0, steps_per_epoch=3)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        create_schedule(opt, "constant", epochs=2, steps_per_epoch=3, warmup_steps=1, warmup_epochs=1)
    with pytest.raises(ConfigError, match="invalid warmup_steps"):
        create_schedule(opt, "cosine", epochs=2, steps_per_epoch=3, warmup_steps=6)
    with pytest.raises(ConfigError, match=r"invalid mode .*'min', 'max'"):
        create_schedule(opt, "plateau", epochs=2, steps_per_epoch=3, mode="up")
    with pytest.raises(ConfigError, match=r"invalid mode .*'triangular'"):
        create_schedule(opt, "cyclic", epochs=2, steps_per_epoch=3, mode="sine")
    with pytest.raises(ConfigError, match=r"invalid milestones"):
        create_schedule(opt, "multistep", epochs=2, steps_per_epoch=3, milestones=[2, 1])
    with pytest.raises(ConfigError, match=r"invalid min_lr .*got 1.0"):
        create_schedule(opt, "cosine", epochs=2, steps_per_epoch=3, min_lr=1.0)
