"""Shared foundations: errors, registries, argument validation, atomic writes, seeding."""

from __future__ import annotations

from honing._core._errors import (
    ConfigError,
    DataError,
    DivergedError,
    HoningError,
    RunFailedError,
    UnknownNameError,
)
from honing._core._io import atomic_write_bytes, atomic_write_text, atomic_save_file
from honing._core._plugins import load_plugins
from honing._core._registry import Registry
from honing._core._energy import EnergyMeter, EnergyReading
from honing._core._processes import child_threads, stop_processes
from honing._core._seed import capture_rng_state, restore_rng_state, seed_everything, set_threads
from honing._core._validate import (
    check_choice,
    check_int,
    check_number,
    check_probability,
    env_number,
)

__all__ = [
    "EnergyMeter",
    "EnergyReading",
    "env_number",
    "ConfigError",
    "DataError",
    "DivergedError",
    "HoningError",
    "Registry",
    "RunFailedError",
    "UnknownNameError",
    "atomic_save_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "capture_rng_state",
    "check_choice",
    "check_int",
    "check_number",
    "check_probability",
    "load_plugins",
    "restore_rng_state",
    "seed_everything",
    "set_threads",
    "child_threads",
    "stop_processes",
]
