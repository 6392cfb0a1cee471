"""Data shared by the model tests."""

from __future__ import annotations

import pytest

from honing.data import load


@pytest.fixture(scope="session")
def digits_data_for_snn():
    return load("sklearn:digits", seed=0)
