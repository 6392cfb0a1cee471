"""Knowledge distillation: the loss against hand computations, the Distiller's frozen teacher and
hint projection, the stale-output guard, the Trainer integration and a small end-to-end run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError
from honing.compress._distill import Distiller, distill, distillation_loss
from honing.models._common import Head
from honing.optim import create_optimizer
from honing.train import TrainConfig, Trainer

S = torch.tensor([[1.0, -0.5, 0.3, 2.0], [0.2, 0.1, -1.0, 0.5], [-2.0, 1.5, 0.0, 0.7]])
T_ = torch.tensor([[2.0, 0.0, -1.0, 1.0], [0.0, 0.3, 0.1, -0.4], [-1.0, 2.5, 0.5, 0.0]])
Y = torch.tensor([3, 0, 1])


def _hand_kl(s: torch.Tensor, t: torch.Tensor, temp: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged over rows, written out."""
    ps = torch.softmax(s / temp, dim=1)
    pt = torch.softmax(t / temp, dim=1)
    return (pt * (torch.log(pt) - torch.log(ps))).sum() / s.shape[0]


def _hand_ce(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -torch.log(torch.softmax(s, dim=1)[torch.arange(len(y)), y]).mean()


def _mlp(d_in: int, hidden: list[int], out: int, *, seed: int, dropout: float = 0.0, bn: bool = False) -> nn.Module:
    from honing.models import create_model

    return create_model("mlp", input_shape=(d_in,), num_outputs=out, hidden=hidden, dropout=dropout,
                        batch_norm=bn, seed=seed)


def _toy(n: int = 64, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, d, generator=g)
    x[:, 0] += 2.0 * y
    return x, y


# --- distillation_loss -------------------------------------------------------------------------


@pytest.mark.parametrize(("temp", "alpha"), [(1.0, 0.3), (4.0, 0.7)])
def test_loss_matches_hand_computation(temp: float, alpha: float) -> None:
    got = distillation_loss(S, T_, Y, temperature=temp, alpha=alpha)
    expected = alpha * temp**2 * _hand_kl(S, T_, temp) + (1 - alpha) * _hand_ce(S, Y)
    torch.testing.assert_close(got, expected)


def test_alpha_zero_is_the_hard_loss_and_alpha_one_the_soft_term() -> None:
    assert torch.equal(distillation_loss(S, T_, Y, temperature=3.0, alpha=0.0), F.cross_entropy(S, Y))
    soft = distillation_loss(S, T_, Y, temperature=3.0, alpha=1.0)
    torch.testing.assert_close(soft, 9.0 * _hand_kl(S, T_, 3.0))
    assert torch.equal(soft, distillation_loss(S, T_, torch.tensor([0, 0, 0]), temperature=3.0, alpha=1.0))
    assert float(distillation_loss(S, S, Y, temperature=2.0, alpha=1.0)) == pytest.approx(0.0, abs=1e-7)


def test_soft_gradient_has_the_closed_form() -> None:
    temp = 2.5
    s = S.clone().requires_grad_(True)
    distillation_loss(s, T_, Y, temperature=temp, alpha=1.0).backward()
    expected = (torch.softmax(S / temp, 1) - torch.softmax(T_ / temp, 1)) * temp / S.shape[0]
    torch.testing.assert_close(s.grad, expected)


def test_custom_hard_loss_binary_and_regression() -> None:
    smooth = distillation_loss(S, T_, Y, temperature=2.0, alpha=0.0, hard_loss="cross_entropy")
    assert torch.equal(smooth, F.cross_entropy(S, Y))
    calls = []
    custom = distillation_loss(S, T_, Y, temperature=2.0, alpha=0.5,
                               hard_loss=lambda p, y: calls.append(1) or p.sum() * 0 + 1.0)
    torch.testing.assert_close(custom, 0.5 * 4.0 * _hand_kl(S, T_, 2.0) + 0.5)
    assert calls == [1]
    # binary logits (N, 1): Bernoulli KL on sigmoid(z / T)
    zs, zt, temp = torch.tensor([[0.5], [-1.0]]), torch.tensor([[2.0], [0.3]]), 2.0
    ps, pt = torch.sigmoid(zs / temp), torch.sigmoid(zt / temp)
    kl = (pt * torch.log(pt / ps) + (1 - pt) * torch.log((1 - pt) / (1 - ps))).sum() / 2
    got = distillation_loss(zs, zt, torch.tensor([1.0, 0.0]), temperature=temp, alpha=1.0)
    torch.testing.assert_close(got, temp**2 * kl)
    # regression: the soft term is the MSE to the teacher, no temperature
    r_s, r_t, r_y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]]), torch.tensor([[1.0], [1.0]])
    got = distillation_loss(r_s, r_t, r_y, temperature=7.0, alpha=0.25, task="regression")
    torch.testing.assert_close(got, torch.tensor(0.25 * 2.5 + 0.75 * 0.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0, "alpha": 0.5}, "invalid temperature: got 0.0; allowed: a number > 0"),
        ({"temperature": 2.0, "alpha": 1.5}, r"invalid alpha: got 1.5; allowed: a number in \[0.0, 1.0\]"),
        ({"temperature": 2.0, "alpha": 0.5, "task": "ranking"}, "invalid task: got 'ranking'"),
    ],
)
def test_loss_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        distillation_loss(S, T_, Y, **kwargs)


def test_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ConfigError, match=r"got shape \(3, 3\) for student outputs of shape \(3, 4\)"):
        distillation_loss(S, T_[:, :3], Y, temperature=2.0, alpha=0.5)


# --- Distiller ---------------------------------------------------------------------------------


def _fit(distiller: Distiller, data, *, val=None, epochs: int = 2, lr: float = 1e-2) -> Trainer:
    opt = create_optimizer(distiller, "adamw", lr=lr)
    trainer = Trainer(distiller, opt, config=TrainConfig(epochs=epochs, batch_size=16, seed=0, progress=False))
    trainer.loss_fn = distiller.loss(trainer.loss_fn)
    trainer.fit(data, val)
    return trainer


def test_teacher_stays_frozen_and_in_eval_mode() -> None:
    x, y = _toy()
    teacher = _mlp(6, [16], 3, seed=1, dropout=0.3, bn=True)
    teacher.train()  # Distiller must put it in eval mode itself
    student = _mlp(6, [4], 3, seed=2)
    before_t = {k: v.clone() for k, v in teacher.state_dict().items()}
    before_s = {k: v.clone() for k, v in student.state_dict().items()}
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    distiller.train()
    assert distiller.training and student.training and not teacher.training
    _fit(distiller, (x, y))
    after = teacher.state_dict()
    assert all(torch.equal(before_t[k], after[k]) for k in before_t)  # BN running stats included
    assert not teacher.training
    assert any(not torch.equal(before_s[k], v) for k, v in student.state_dict().items())
    assert set(distiller.student_state_dict()) == set(student.state_dict())
    assert any(k.startswith("teacher.") for k in distiller.state_dict())


def test_eval_mode_loss_is_the_hard_loss() -> None:
    x, y = _toy(n=12)
    distiller = Distiller(_mlp(6, [4], 3, seed=2), _mlp(6, [8], 3, seed=1), temperature=2.0, alpha=0.9)
    loss_fn = distiller.loss(None)
    distiller.eval()
    pred = distiller(x)
    assert torch.equal(loss_fn(pred, y), F.cross_entropy(pred, y))
    distiller.train()
    with torch.no_grad():  # the Trainer's validation: no grad, model possibly back in train mode
        pred = distiller(x)
        assert torch.equal(loss_fn(pred, y), F.cross_entropy(pred, y))
    pred = distiller(x)
    expected = distillation_loss(pred, distiller.teacher(x), y, temperature=2.0, alpha=0.9)
    torch.testing.assert_close(loss_fn(pred, y), expected)


def test_stale_teacher_outputs_are_refused() -> None:
    x, y = _toy(n=16)
    distiller = Distiller(_mlp(6, [4], 3, seed=2), _mlp(6, [8], 3, seed=1)).train()
    loss_fn = distiller.loss(None)
    with pytest.raises(ConfigError, match="got no teacher outputs"):
        loss_fn(distiller.student(x), y)  # no distiller forward at all
    pred = distiller(x)
    loss_fn(pred, y)
    with pytest.raises(ConfigError, match="got no teacher outputs"):
        loss_fn(pred, y)  # used once only
    distiller(x)
    with pytest.raises(ConfigError, match="got 8 rows but the teacher's outputs from the last forward have 16"):
        loss_fn(distiller.student(x[:8]), y[:8])
    distiller(x)
    with torch.no_grad():
        distiller(x[:4])  # an evaluation forward clears what the training forward kept
    with pytest.raises(ConfigError, match="got no teacher outputs"):
        loss_fn(distiller.student(x), y)


def test_feature_projection_trains_and_is_not_part_of_the_student() -> None:
    x, y = _toy(n=16)
    student, teacher = _mlp(6, [4], 3, seed=2), _mlp(6, [16, 8], 3, seed=1)
    with pytest.raises(ConfigError, match="invalid example_inputs: got None with feature_weight=0.5"):
        Distiller(student, teacher, feature_weight=0.5)
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.6, feature_weight=0.5, example_inputs=x, seed=0)
    proj = distiller.projection
    assert isinstance(proj, nn.Linear) and (proj.in_features, proj.out_features) == (4, 8)  # head inputs
    assert all(p.requires_grad for p in proj.parameters())
    ids = {id(p) for p in distiller.parameters()}
    assert all(id(p) in ids for p in proj.parameters())
    assert not {id(p) for p in proj.parameters()} & {id(p) for p in distiller.student.parameters()}
    assert not any("projection" in k for k in distiller.student_state_dict())

    distiller.train()
    pred = distiller(x)
    loss = distiller.loss(None)(pred, y)
    # by hand: the features are the inputs of each model's head
    f_s = student.blocks[0](x)
    with torch.no_grad():
        f_t = teacher.blocks[1](teacher.blocks[0](x))
    expected = (distillation_loss(pred, teacher(x), y, temperature=2.0, alpha=0.6)
                + 0.5 * F.mse_loss(proj(f_s), f_t))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert proj.weight.grad is not None and float(proj.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_features_from_head_modules_and_named_submodules() -> None:
    class Tiny(nn.Module):
        def __init__(self, width: int, hidden: int | None) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, width), nn.ReLU())
            self.head = Head(width, 3, hidden=hidden, activation="relu", gain=None, dropout=0.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    x, _ = _toy(n=8)
    d = Distiller(Tiny(5, None), Tiny(12, 7), feature_weight=1.0, example_inputs=x)
    assert (d.projection.in_features, d.projection.out_features) == (5, 7)  # the input of Head.out
    d = Distiller(Tiny(5, None), Tiny(12, 7), feature_weight=1.0, example_inputs=x,
                  student_features="body.0", teacher_features="body")
    assert (d.projection.in_features, d.projection.out_features) == (5, 12)
    with pytest.raises(ConfigError, match=r"invalid teacher_features: got 'bod'; allowed: .*'body'"):
        Distiller(Tiny(5, None), Tiny(12, 7), feature_weight=1.0, example_inputs=x, teacher_features="bod")
    headless = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(ConfigError, match="the student has no `head`"):
        Distiller(headless, Tiny(12, None), feature_weight=1.0, example_inputs=x)


def test_distiller_rejects_bad_models() -> None:
    x, _ = _toy(n=8)
    student = _mlp(6, [4], 3, seed=2)
    with pytest.raises(ConfigError, match=r"outputs have shape \(2, 5\) but the student's have \(2, 3\)"):
        Distiller(student, _mlp(6, [8], 5, seed=1), example_inputs=x)
    with pytest.raises(ConfigError, match="shares parameters with the student"):
        Distiller(student, student)
    with pytest.raises(ConfigError, match="invalid temperature: got 0"):
        Distiller(student, _mlp(6, [8], 3, seed=1), temperature=0)
    with pytest.raises(ConfigError, match=r"invalid alpha: got 1.5"):
        Distiller(student, _mlp(6, [8], 3, seed=1), alpha=1.5)


def test_trainer_built_by_hand_reports_val_metrics() -> None:
    x, y = _toy(n=96)
    teacher = _mlp(6, [16], 3, seed=1)
    student = _mlp(6, [4], 3, seed=2)
    distiller = Distiller(student, teacher, feature_weight=0.1, example_inputs=x, seed=0)
    trainer = _fit(distiller, (x[:64], y[:64]), val=(x[64:], y[64:]), epochs=3)
    final = trainer.result.final
    assert {"loss", "val_loss", "val_accuracy"} <= set(final)
    student.eval()
    with torch.no_grad():
        hard = F.cross_entropy(student(x[64:]), y[64:])
    assert final["val_loss"] == pytest.approx(float(hard), rel=1e-5)  # validation = the hard loss only


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_teacher():
    from honing.data import load

    ds = load("sklearn:digits", seed=0)
    teacher = _mlp(64, [64], 10, seed=0)
    opt = create_optimizer(teacher, "adamw", lr=1e-2)
    Trainer(teacher, opt, config=TrainConfig(epochs=8, batch_size=64, seed=0, progress=False)).fit(ds.train)
    return ds, teacher.eval()


def _agreement(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """KL(teacher || student) on x (lower is closer) and the argmax agreement."""
    with torch.no_grad():
        s, t = student.eval()(x), teacher(x)
    kl = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="batchmean", log_target=True)
    return float(kl), float((s.argmax(1) == t.argmax(1)).float().mean())


def test_distill_end_to_end(digits_teacher) -> None:
    ds, teacher = digits_teacher
    val = ds.val
    with torch.no_grad():
        assert float((teacher(val.x).argmax(1) == val.y).float().mean()) > 0.9
    random_kl, random_agree = _agreement(_mlp(64, [16], 10, seed=3), teacher, val.x)
    student = distill(teacher, _mlp(64, [16], 10, seed=3), ds.train, val, temperature=4.0, alpha=0.7,
                      epochs=6, lr=1e-2, batch_size=64, seed=0)
    assert not student.training
    with torch.no_grad():
        accuracy = float((student(val.x).argmax(1) == val.y).float().mean())
    kl, agree = _agreement(student, teacher, val.x)
    assert accuracy > 0.8  # chance is 0.1
    assert kl < random_kl / 4 and agree > random_agree + 0.5


def test_distill_checks_output_shapes(digits_teacher) -> None:
    ds, teacher = digits_teacher
    with pytest.raises(ConfigError, match=r"outputs have shape \(2, 10\) but the student's have \(2, 7\)"):
        distill(teacher, _mlp(64, [8], 7, seed=0), ds.train, epochs=1)
