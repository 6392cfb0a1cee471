"""A small trained digits classifier and its input space ([0, 1] pixel units), shared by the tests."""

from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(__file__)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from robust_toys import digits_data, train_mlp  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """(model, x_test, y_test, space, x_train, y_train): an MLP trained on 1,400 rows, 397 test rows."""
    x, y, space = digits_data()
    model = train_mlp(x[:1400], y[:1400])
    return model, x[1400:], y[1400:], space, x[:1400], y[:1400]
