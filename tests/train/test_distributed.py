"""Data-parallel training (torch.distributed DDP, gloo on CPU) through fit_distributed."""

from __future__ import annotations

import time

import pytest
import torch
from ddp_toys import MakeTrainer, data

from honing import ConfigError
from honing.train import DistributedError, fit_distributed


def test_two_ranks_of_half_the_batch_give_the_weights_of_one_process():
    x, y = data(201)  # the last batch of 9 rows splits 5 / 4: the slices' losses are weighted by their size
    single = MakeTrainer(batch_size=64, epochs=3)()
    single.fit((x, y))
    ddp = fit_distributed(MakeTrainer(batch_size=64, epochs=3), (x, y), processes=2)
    want = single.model.state_dict()
    assert set(ddp.state) == set(want)  # plain names: the DDP wrapper is not in the saved weights
    worst = max(float((ddp.state[k] - want[k]).abs().max()) for k in want)
    assert worst < 1e-5, worst
    assert ddp.result.epochs_run == 3 and ddp.processes == 2
    # the logged loss is the whole batch's, as in one process
    for a, b in zip(ddp.result.history, single.history):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)


def test_a_rank_that_stops_stops_every_rank():
    x, y = data(128)
    ddp = fit_distributed(MakeTrainer(batch_size=32, epochs=6, stop_rank=1), (x, y), processes=2)
    assert ddp.result.epochs_run == 2 and ddp.result.stop_reason == "stopped on another rank"


def test_a_crashed_rank_ends_the_run_at_once_with_its_number():
    x, y = data(128)
    t0 = time.perf_counter()
    with pytest.raises(DistributedError, match=r"rank 1 of 2: exited with code 3"):
        fit_distributed(MakeTrainer(batch_size=32, epochs=50, crash_rank=1), (x, y), processes=2, timeout_s=60)
    assert time.perf_counter() - t0 < 50  # not the collective timeout, far from torch's 30 minutes


def test_a_hung_rank_ends_the_run_within_the_collective_timeout():
    x, y = data(128)
    t0 = time.perf_counter()
    with pytest.raises(DistributedError, match=r"rank 0 of 2: .*[Tt]imed out.*; rank 1 never joined it"):
        fit_distributed(MakeTrainer(batch_size=32, epochs=50, hang_rank=1), (x, y), processes=2, timeout_s=5)
    assert time.perf_counter() - t0 < 60


def test_bad_arguments_are_clear():
    with pytest.raises(ConfigError, match="processes"):
        fit_distributed(MakeTrainer(), data(), processes=0)
    with pytest.raises(ConfigError, match="backend.*gloo"):
        fit_distributed(MakeTrainer(), data(), processes=2, backend="mpi")
