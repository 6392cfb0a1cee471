"""The energy meter against a fake RAPL tree (packages, a sub-zone, wraps) and its estimate."""

from __future__ import annotations

import time

import pytest

from honing import ConfigError
from honing._core import EnergyMeter


def _zone(root, name, energy, max_range=1_000_000):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text("package-0\n")
    (folder / "energy_uj").write_text(f"{energy}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    return folder


def _set(folder, energy):
    tmp = folder / "energy_uj.tmp"  # replaced whole, as the kernel's file reads: never seen half written
    tmp.write_text(f"{energy}\n")
    tmp.replace(folder / "energy_uj")


def test_a_reading_that_fails_is_skipped_and_counted_by_the_next(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", 0)
    with EnergyMeter(root=tmp_path, poll_s=60) as meter:
        (p0 / "energy_uj").write_text("")  # a read that came back empty
        meter._sample()
        _set(p0, 500)
    assert meter.reading.joules == pytest.approx(500 / 1e6)


def test_packages_are_summed_a_wrap_is_counted_through_and_sub_zones_are_not_added(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", 999_000)  # 1,000 uJ before its wrap
    p1 = _zone(tmp_path, "intel-rapl:1", 10_000)
    core = _zone(tmp_path, "intel-rapl:0:0", 0)  # inside package 0: never added
    with EnergyMeter(root=tmp_path, poll_s=60) as meter:
        _set(p0, 2_000)  # wrapped: 1,000 + 2,000
        _set(p1, 510_000)  # 500,000
        _set(core, 900_000)
    r = meter.reading
    assert r.method == "rapl" and r.joules == pytest.approx((3_000 + 500_000) / 1e6)
    assert "intel-rapl:0, intel-rapl:1" in r.detail and r.seconds >= 0


def test_several_wraps_are_counted_by_the_polling_thread(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", 0, max_range=1_000)
    with EnergyMeter(root=tmp_path, poll_s=0.02) as meter:
        for value in (600, 200, 800, 400):  # +600, +600 (wrap), +600, +600 (wrap)
            _set(p0, value)
            time.sleep(0.2)
    assert meter.reading.joules == pytest.approx(2_400 / 1e6)


def test_without_readable_counters_the_estimate_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HONING_CPU_WATTS_PER_CORE", "12")
    (tmp_path / "intel-rapl:0" / "energy_uj").mkdir(parents=True)  # unreadable as a file
    with EnergyMeter(root=tmp_path) as meter:
        end = time.process_time() + 0.3
        while time.process_time() < end:  # 0.3 CPU-seconds of work
            pass
    r = meter.reading
    assert r.method == "estimated" and "x 12 W per busy core" in r.detail and "intel-rapl:0" in r.detail
    assert 0.3 * 12 * 0.9 <= r.joules <= 0.3 * 12 * 3
    with EnergyMeter(root=tmp_path / "none") as none:
        pass
    assert none.reading.method == "estimated" and "no " in none.reading.detail


def test_a_bad_power_setting_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HONING_CPU_WATTS_PER_CORE", "-3")
    with pytest.raises(ConfigError, match="HONING_CPU_WATTS_PER_CORE"):
        with EnergyMeter(root=tmp_path / "none"):
            pass
