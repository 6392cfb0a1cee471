"""The budget lock: held while a worker counts the study's trials and asks for a new one, so
the study never holds more than ``n_trials`` claimed trials.

Where the lock lives follows the storage:

* a journal file or SQLite database (one machine's disk): an exclusive ``flock`` on
  ``run_dir/study.lock``, which the kernel drops when its holder dies;
* PostgreSQL (shared by machines): a session advisory lock in the database itself
  (``pg_advisory_lock``, keyed by the study name), which the server drops when the holder's
  connection ends, so workers on several machines share one exact budget.

``budget_lock(storage_url, study_name, run_dir)`` returns a context-manager factory; a worker
makes one and enters it once per claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

__all__ = ["budget_lock", "lock_kind"]


def lock_kind(storage_url: str) -> str:
    """``postgres`` where the database can hold the lock, else ``file``."""
    return "postgres" if storage_url.startswith(("postgresql://", "postgresql+psycopg2://")) else "file"


def budget_lock(storage_url: str, study_name: str, run_dir: str | os.PathLike[str]) -> Callable[[], AbstractContextManager[None]]:
    if lock_kind(storage_url) == "postgres":
        return _PostgresLock(storage_url, study_name)
    return lambda: file_lock(run_dir)


@contextlib.contextmanager
def file_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on ``run_dir/study.lock`` (local to this machine)."""
    path = Path(run_dir) / "study.lock"
    with open(path, "a") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def advisory_key(study_name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``, stable across processes and machines."""
    digest = hashlib.blake2b(f"honing-budget:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _PostgresLock:
    """``pg_advisory_lock`` on one connection this worker keeps (opened on first use)."""

    def __init__(self, storage_url: str, study_name: str) -> None:
        self.url = "postgresql+psycopg2://" + storage_url.split("://", 1)[1]
        self.key = advisory_key(study_name)
        self._engine: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        import sqlalchemy

        from honing.tune._reconnect import is_connection_error

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url, pool_size=1, max_overflow=0, pool_pre_ping=True,
                                                    connect_args={"connect_timeout": 10})
        conn = self._take()
        try:
            yield
        finally:
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                conn.commit()
                conn.close()
            except Exception as err:
                if not is_connection_error(err):
                    raise
                # the server dropped the session, and the lock with it
                with contextlib.suppress(Exception):
                    conn.invalidate()
                    conn.close()

    def _take(self) -> Any:
        """A connection holding the lock; a lost server is waited for (``HONING_RECONNECT_S``)."""
        import sqlalchemy

        from honing.tune._reconnect import reconnect_window_s, with_reconnect

        def attempt(retried: bool) -> Any:
            conn = self._engine.connect()
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                conn.commit()
            except Exception:
                with contextlib.suppress(Exception):
                    conn.invalidate()
                    conn.close()
                raise
            return conn

        return with_reconnect(attempt, "budget lock", reconnect_window_s())

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}  # connections do not cross processes
