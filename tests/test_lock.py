"""requirements.lock pins every dependency; the environment the tests run in is the locked one."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_the_lock_pins_every_dependency_and_the_tests_run_on_it():
    pins = _pins()
    for name in ("torch", "optuna", "onnxruntime", "numpy", "scikit-learn", "pydantic", "transformers", "pandas",
                 "pytest", "sqlalchemy", "typing-extensions"):  # direct and transitive
        assert name in pins, name
    assert pins["torch"].startswith("2.13.0")
    wrong = {name: (version, metadata.version(name)) for name, version in pins.items()
             if _installed(name) and metadata.version(name) != version}
    missing = [name for name in pins if not _installed(name)]
    assert not wrong, f"installed versions differ from requirements.lock: {wrong}"
    assert not missing, f"locked but not installed: {missing}"


def test_pyproject_keeps_ranges():
    text = (ROOT / "pyproject.toml").read_text()
    exact = re.findall(r'"([A-Za-z0-9_.-]+)==', text)
    assert exact == ["torch"], exact  # only torch is pinned (the CPU wheel); the lock holds the rest


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
