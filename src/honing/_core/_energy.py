"""Energy of a piece of work, in joules, with the method that measured it.

``with EnergyMeter() as meter: ...`` then ``meter.reading`` (joules, seconds, method, detail):

* ``rapl``: the CPU packages' RAPL counters under ``/sys/class/powercap`` (``intel-rapl:N``, and
  AMD's under the same names), read at the start, every ``poll_s`` seconds by a thread, and at
  the end; a counter that passed its ``max_energy_range_uj`` and started again from 0 (a wrap)
  is counted through. Whole packages: every process on them is included, not only this one.
* ``nvml``: with ``gpu=True`` and NVIDIA's management library (``pynvml``), each GPU's total
  energy counter is added.
* ``estimated``: where no counter can be read (no powercap folder, or its files are readable
  by root only, as on most machines since 2020), the process's CPU time (its own and its
  finished children's) times a power per busy core: ``HONING_CPU_WATTS_PER_CORE``, 10 W by
  default (a server core at load draws 5-15 W). The reading says ``estimated`` and how.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["EnergyMeter", "EnergyReading", "cpu_watts_per_core"]

POWERCAP = "/sys/class/powercap"
WATTS_ENV = "HONING_CPU_WATTS_PER_CORE"
DEFAULT_WATTS_PER_CORE = 10.0


@dataclass(frozen=True)
class EnergyReading:
    joules: float
    seconds: float
    method: str  # "rapl", "rapl+nvml", "nvml", "estimated"
    detail: str  # what was read, or the estimate's assumption

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "joules": round(self.joules, 4), "seconds": round(self.seconds, 4)}


def cpu_watts_per_core() -> float:
    """The estimate's power per busy core (``HONING_CPU_WATTS_PER_CORE``, default 10 W)."""
    from honing._core._validate import env_number

    return env_number(WATTS_ENV, DEFAULT_WATTS_PER_CORE, low=0, low_inclusive=False, allowed="watts per busy core > 0")


class _Counter:
    """One RAPL package counter (microjoules), with wraps counted through."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "energy_uj"
        self.range = int((folder / "max_energy_range_uj").read_text())
        self.last = self.read()
        self.total_uj = 0

    def read(self) -> int:
        return int(self.path.read_text())

    def sample(self) -> None:
        try:
            now = self.read()
        except (OSError, ValueError):  # a reading that failed (or came back empty): the next one counts it
            return
        self.total_uj += now - self.last if now >= self.last else now + self.range - self.last
        self.last = now


def rapl_counters(root: str | os.PathLike[str] = POWERCAP) -> tuple[list[_Counter], str]:
    """The readable top-level package counters under ``root``, and why there are none."""
    base = Path(root)
    if not base.is_dir():
        return [], f"no {base}"
    counters, problems = [], []
    for folder in sorted(base.glob("*-rapl:*")):
        if folder.name.count(":") != 1:  # intel-rapl:0:0 (a core or DRAM zone) is inside its package
            continue
        try:
            counters.append(_Counter(folder))
        except (OSError, ValueError) as err:
            problems.append(f"{folder.name}: {type(err).__name__}")
    if counters:
        return counters, ""
    return [], ("; ".join(problems) + " (the counters are readable by root only)") if problems else f"no RAPL zone in {base}"


class _Nvml:
    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self.start = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]  # millijoules

    def joules(self) -> float:
        now = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        return sum(b - a for a, b in zip(self.start, now)) / 1e3


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class EnergyMeter:
    """Measure the energy of the ``with`` block (see the module docstring). ``root``: the powercap
    folder (tests give a fake one); ``gpu``: add NVIDIA GPUs' counters when ``pynvml`` can read
    them; ``poll_s``: how often the RAPL counters are read (to count wraps)."""

    def __init__(self, *, root: str | os.PathLike[str] = POWERCAP, gpu: bool = False, poll_s: float = 5.0) -> None:
        self.root, self.gpu, self.poll_s = root, gpu, float(poll_s)
        self.reading: EnergyReading | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> EnergyMeter:
        self._counters, self._why = rapl_counters(self.root)
        self._nvml = None
        if self.gpu:
            try:
                self._nvml = _Nvml()
            except Exception:  # no pynvml, no driver, no GPU: the CPU's reading stands alone
                self._nvml = None
        self._t0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        if self._counters:
            self._thread = threading.Thread(target=self._poll, name="honing-energy", daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            for c in self._counters:
                c.sample()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        seconds = time.perf_counter() - self._t0
        parts, methods = [], []
        joules = 0.0
        if self._counters:
            self._sample()
            joules += sum(c.total_uj for c in self._counters) / 1e6
            methods.append("rapl")
            parts.append(f"RAPL {', '.join(c.folder.name for c in self._counters)} (whole packages)")
        if self._nvml is not None:
            joules += self._nvml.joules()
            methods.append("nvml")
            parts.append(f"NVML, {len(self._nvml.handles)} GPU(s)")
        if not methods:
            watts = cpu_watts_per_core()
            cpu = _cpu_seconds() - self._cpu0
            joules = cpu * watts
            methods.append("estimated")
            parts.append(f"{cpu:.2f} CPU-seconds x {watts:g} W per busy core ({WATTS_ENV}); no counter: {self._why}")
        self.reading = EnergyReading(joules, seconds, "+".join(methods), "; ".join(parts))
