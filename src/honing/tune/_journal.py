"""The study journal file, made safe against torn records.

Optuna's ``JournalFileBackend`` appends one JSON record per line. A write cut short (a full
disk, ``kill -9`` mid-write, a power cut) leaves a last line without its newline; Optuna skips
such a tail while reading, but the next append extends it, and from then on the line in the
middle of the file is not JSON and every read of the study fails. ``SafeJournalFileBackend``:

- on open, and before every append (under the journal's lock, so no writer is mid-record),
  cuts a torn tail: a last line without a newline, or lines that are not JSON records. What is
  cut is kept beside the journal in ``<journal>.cut-<n>`` and a warning says so. A damaged line
  that ends in complete records (a torn record that a later write extended) keeps those records;
- an append that fails (``OSError``: no space left, quota, I/O error) truncates the file back
  to its length before the write, so a failed write leaves no partial line behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend

__all__ = ["SafeJournalFileBackend", "repair_journal"]

_RECORD_START = b'{"op_code"'


def repair_journal(path: str | os.PathLike[str]) -> Path | None:
    """Cut torn or damaged records out of the journal at ``path``; return the file keeping what was
    cut (None when the journal was whole). Call it only while no process writes the journal."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data or (data.endswith(b"\n") and _all_records(data)):
        return None
    kept: list[bytes] = []
    cut: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\n") and _is_record(line):
            kept.append(line)
            continue
        # a torn record a later write extended: keep the complete records at its end
        salvaged = b""
        if line.endswith(b"\n"):
            start = line.find(_RECORD_START, 1)
            while start > 0:
                if _is_record(line[start:]):
                    salvaged = line[start:]
                    break
                start = line.find(_RECORD_START, start + 1)
        if salvaged:
            kept.append(salvaged)
            cut.append(line[: len(line) - len(salvaged)] + b"\n")
        else:
            cut.append(line if line.endswith(b"\n") else line + b"\n")
    n = 1
    while (saved := path.with_name(f"{path.name}.cut-{n}")).exists():
        n += 1
    saved.write_bytes(b"".join(cut))
    tmp = path.with_name(path.name + ".repair")
    with open(tmp, "wb") as f:
        f.write(b"".join(kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    warnings.warn(f"the study journal {str(path)!r} ended in a damaged record (a write cut short: full disk or "
                  f"killed process); {len(cut)} line(s) cut and kept in {str(saved)!r}, {len(kept)} records kept",
                  UserWarning, stacklevel=2)
    return saved


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _all_records(data: bytes) -> bool:
    return all(_is_record(line) for line in data.splitlines() if line.strip())


class SafeJournalFileBackend(JournalFileBackend):
    """``JournalFileBackend`` that repairs a torn tail and never leaves one (module docstring)."""

    def __init__(self, file_path: str, lock_obj: Any = None) -> None:
        super().__init__(file_path, lock_obj=lock_obj)
        with _locked(self._lock):
            repair_journal(self._file_path)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        with _locked(self._lock):
            if not _ends_whole(self._file_path):  # another process died mid-write since we opened
                repair_journal(self._file_path)
                self._log_number_offset = {0: 0}  # line numbers after the cut are read afresh
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)  # unbuffered: no flush on close
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(text)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # no partial record left behind, whatever the write managed
                    raise
            finally:
                os.close(fd)


def _ends_whole(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


@contextlib.contextmanager
def _locked(lock: Any) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
