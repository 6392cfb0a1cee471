"""Spawning worker processes: the thread count they start with, and stopping them."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Sequence
from typing import Any

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def child_threads(threads: int) -> Iterator[None]:
    """While processes are spawned inside the block, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``
    say ``threads``: torch reads them at import in the child. This process's values come back
    after the block."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(threads) for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_processes(procs: Sequence[Any], grace_s: float) -> None:
    """Ask ``procs`` (multiprocessing processes) to stop with SIGTERM, wait up to ``grace_s``
    seconds for all of them, then kill those still alive."""
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.time() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.time()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
