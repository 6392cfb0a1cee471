from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from honing._core import (
    ConfigError,
    Registry,
    UnknownNameError,
    atomic_save_file,
    atomic_write_text,
    capture_rng_state,
    check_choice,
    check_int,
    check_number,
    restore_rng_state,
)


def test_registry_unknown_name_lists_close_matches_and_allowed():
    reg: Registry[object] = Registry("optimizer")
    reg.register("adam", dict)
    reg.register("adamw", dict, aliases=("adam_w",))
    with pytest.raises(UnknownNameError) as err:
        reg.get("adma")
    msg = str(err.value)
    assert "unknown optimizer 'adma'" in msg and "'adam'" in msg and "Allowed: adam, adamw" in msg
    assert reg.get("ADAM_W") is dict
    assert isinstance(err.value, KeyError)


def test_registry_rejects_duplicates():
    reg: Registry[object] = Registry("model")
    reg.register("mlp", dict)
    with pytest.raises(ConfigError):
        reg.register("mlp", list)


def test_checks_name_argument_value_and_allowed():
    with pytest.raises(ConfigError, match=r"invalid lr: got -1; allowed: a number >= 0"):
        check_number("lr", -1, low=0.0)
    with pytest.raises(ConfigError, match=r"invalid mode: got 'up'; allowed: 'min', 'max'"):
        check_choice("mode", "up", ["min", "max"])
    with pytest.raises(ConfigError, match="an integer"):
        check_int("epochs", 2.5, low=1)
    assert check_int("epochs", 3.0, low=1) == 3


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert os.listdir(p.parent) == ["f.txt"]
    old = os.umask(0o022)
    try:
        atomic_write_text(p, "three")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644  # like open(), not mkstemp's 0600


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_atomic_save_file_gives_the_usual_mode_even_when_the_writer_replaces_the_file(tmp_path):
    def replace_it(tmp: str) -> None:  # like safetensors' save_file: a new file at the same path
        os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"weights")
        os.close(fd)

    old = os.umask(0o022)
    try:
        path = atomic_save_file(tmp_path / "w.safetensors", replace_it)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"weights" and (path.stat().st_mode & 0o777) == 0o644
