"""The report opens in a real browser: headless Chromium paints the charts and parses every SVG part."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _report_helpers import full_data, png_pixels

from honing.report import render_report, write_report

CHROMIUM = "/usr/bin/chromium"
BAR_BLUE = (0x00, 0x72, 0xB2)  # importance bars: PALETTE[0], fully opaque
OURS_ROW = (0xFF, 0xF3, 0xBF)  # the model's row of the baseline table
BALANCE_BAR = (0x6A, 0x3D, 0x9A)  # the data section's class-balance bars


def chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.fail("headless Chromium is not installed (needed to check the HTML report renders): "
                    "run `make setup` (as root it runs `apt-get install -y chromium`)")
    return path


def run_chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,4000", *args]
    env = {**os.environ, "HOME": str(tmp)}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 90 s: {' '.join(cmd)}")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("chromium")
    html = render_report(full_data())
    write_report(tmp / "report.html", full_data())
    return tmp, html


def test_screenshot_shows_the_charts(report):
    tmp, _ = report
    shot = tmp / "shot.png"
    proc = run_chromium(tmp, f"--screenshot={shot}", (tmp / "report.html").as_uri())
    assert shot.exists(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    data = shot.read_bytes()
    assert len(data) > 50_000, len(data)
    width, height, rows = png_pixels(data)
    assert (width, height) == (1280, 4000)
    bpp = len(rows[0]) // width
    white = painted = blue = ours = balance = 0
    for row in rows[::2]:
        for x in range(0, len(row), bpp):
            px = (row[x], row[x + 1], row[x + 2])
            if px == (255, 255, 255):
                white += 1
            else:
                painted += 1
                blue += px == BAR_BLUE
                ours += px == OURS_ROW
                balance += px == BALANCE_BAR
    assert painted / (white + painted) > 0.03, "the page is (almost) all white"
    assert blue > 1000, f"only {blue} pixels of the importance bars' blue: the SVG was not painted"
    assert ours > 2000, f"only {ours} pixels of the baseline table's model row: the baselines are not visible"
    assert balance > 2000, f"only {balance} pixels of the class-balance bars: the data section is not visible"


def test_dom_has_every_svg_element(report):
    tmp, html = report
    proc = run_chromium(tmp, "--dump-dom", (tmp / "report.html").as_uri())
    dom = proc.stdout
    assert "<svg" in dom, f"no SVG in the DOM; chromium said:\n{proc.stderr[-2000:]}"
    for tag in ("svg", "polyline", "circle", "rect", "path", "text", "section", "table"):
        source = len(re.findall(rf"<{tag}[\s>]", html))
        assert source > 0 and len(re.findall(rf"<{tag}[\s>]", dom)) == source, tag
    assert "Parallel coordinates" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
