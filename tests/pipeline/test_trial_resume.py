"""A trial interrupted mid-training leaves its checkpoint; its retry resumes from the last epoch
saved and ends where the uninterrupted trial would have."""

from __future__ import annotations

import pytest

from honing.pipeline import RecipeObjective

RECIPE = {
    "name": "resume", "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"epochs": 8, "batch_size": 16, "early_stopping": None, "optimizer": {"name": "adam", "lr": 0.01}},
    "tune": {"cv": None, "n_trials": 2, "space": {"training.optimizer.lr": {"float": [1e-3, 1e-1], "log": True}}},
}


class Rep:
    """A reporter stand-in: trial ``number``, maybe the retry of ``retry_of``; Ctrl-C at ``stop_at``."""

    def __init__(self, number: int, *, seed: int, retry_of: int | None = None, stop_at: int | None = None) -> None:
        self.number, self.seed, self.retry_of, self.stop_at = number, seed, retry_of, stop_at
        self.steps: list[int] = []
        self.attrs: dict = {}

    def report(self, value, step):
        self.steps.append(step)
        if step == self.stop_at:
            raise KeyboardInterrupt

    def should_prune(self):
        return False

    def set(self, key, value):
        self.attrs[key] = value


def test_a_retry_resumes_the_interrupted_trial_from_its_checkpoint(tmp_path):
    params = {"training.optimizer.lr": 0.02}
    whole = RecipeObjective(RECIPE, str(tmp_path / "a"), checkpoint_every_s=0)
    want = Rep(0, seed=5)
    value = whole(params, want)

    objective = RecipeObjective(RECIPE, str(tmp_path / "b"), checkpoint_every_s=0)
    with pytest.raises(KeyboardInterrupt):
        objective(params, Rep(0, seed=5, stop_at=5))  # saved after epoch 4, interrupted in epoch 5's report
    assert (tmp_path / "b" / "trials" / "ckpt-0").is_dir()
    retry = Rep(1, seed=6, retry_of=0)  # another number and seed: the checkpoint decides
    assert objective(params, retry) == pytest.approx(value, abs=1e-9)
    assert retry.attrs["resumed"] == {"trial": 0, "epoch": 4}
    assert retry.steps == [5, 6, 7, 8]  # only the epochs it ran
    assert retry.attrs["curve"] == want.attrs["curve"] and len(retry.attrs["curve"]) == 8
    assert not any(p.name.startswith("ckpt-") for p in (tmp_path / "b" / "trials").iterdir())  # cleaned up


def test_without_a_checkpoint_a_retry_starts_afresh(tmp_path):
    objective = RecipeObjective(RECIPE, str(tmp_path), checkpoint_every_s=0)
    retry = Rep(3, seed=3, retry_of=2)  # trial 2 ran on another machine: nothing here
    objective({"training.optimizer.lr": 0.02}, retry)
    assert retry.steps == list(range(1, 9)) and "resumed" not in retry.attrs
