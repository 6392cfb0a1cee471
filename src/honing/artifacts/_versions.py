"""Versions of a served model: ``HOME/versions/vN/`` model folders and ``HOME/versions/CURRENT``.

``HOME`` is what a user passes to ``honing serve`` / ``honing refit`` (a run folder or a model
folder). The first refit keeps the model served until then as ``v1``; each promoted refit adds
``vN`` and points ``CURRENT`` at it; ``honing rollback`` points it back. ``CURRENT`` is replaced
atomically (a server that polls it never reads half a name), and no version is ever deleted.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from honing._core import ConfigError, DataError, atomic_write_text

VERSIONS, CURRENT = "versions", "CURRENT"
_NAME = re.compile(r"^v([1-9][0-9]{0,6})$")

__all__ = ["CURRENT", "VERSIONS", "add_version", "current_version", "list_versions", "set_current"]


def list_versions(home: str | Path) -> list[str]:
    """The versions of ``home`` in order (``v1``, ``v2``, ...); [] when it has none."""
    folder = Path(home) / VERSIONS
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if _NAME.match(p.name) and (p / "meta.json").is_file()]
    return sorted(names, key=lambda n: int(n[1:]))


def current_version(home: str | Path) -> tuple[str, Path] | None:
    """(name, folder) of the version ``CURRENT`` names, or None when ``home`` has no versions."""
    pointer = Path(home) / VERSIONS / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not _NAME.match(name) or not (Path(home) / VERSIONS / name / "meta.json").is_file():
        raise DataError(f"invalid {pointer}: it names {name!r}, which is not a version of {str(home)!r}; allowed: "
                        f"{', '.join(list_versions(home)) or '(none)'} (honing rollback HOME --to vN repairs it)")
    return name, Path(home) / VERSIONS / name


def add_version(home: str | Path, model_folder: str | Path) -> str:
    """Copy ``model_folder`` in as the next version (not made current); returns its name."""
    existing = list_versions(home)
    name = f"v{int(existing[-1][1:]) + 1 if existing else 1}"
    target = Path(home) / VERSIONS / name
    staging = target.with_name(f".{name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_folder, staging, ignore=shutil.ignore_patterns("serving"))
    staging.rename(target)  # a version appears whole or not at all
    return name


def set_current(home: str | Path, name: str) -> None:
    if name not in list_versions(home):
        raise ConfigError(f"invalid version {name!r} for {str(home)!r}; allowed: "
                          f"{', '.join(list_versions(home)) or '(none: refit first)'}")
    atomic_write_text(Path(home) / VERSIONS / CURRENT, name + "\n")
