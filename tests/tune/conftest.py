"""Toy objectives live in a plain module so spawned worker processes can import them."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # spawned workers inherit sys.path


import signal  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _ctrl_c_enabled():
    """The Ctrl-C tests need SIGINT's default handler. A shell without job control starts
    background commands with SIGINT ignored (and Python then keeps it ignored): undo that here,
    so the tests and the processes they start can be interrupted."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
