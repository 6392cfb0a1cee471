"""A plugin adds a stage, a recipe section and a compression step from outside the package,
the way an installed package would (an entry point in ``honing.plugins``), and ``honing run``
runs them without any file of honing edited. Each CLI run is its own process, so the test
process's registries stay as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _run_helpers import tiny, write_recipe

PLUGIN = '''
"""A plugin: expected calibration error on the test rows, and weights rounded to a few decimals."""
import copy

import torch

from honing.pipeline import StepOutput, register_compress_step, register_stage
from honing.artifacts import write_state
from honing.recipe import Section, register_section


class CalibrationOptions(Section):
    bins: int = 10
    """equal-width confidence bins"""


class CalibrationStage:
    """Expected calibration error of the final model on the test rows."""

    name = "calibration"

    def run(self, ctx):
        options = ctx.recipe.extensions.get("calibration")
        if options is None:
            return None
        if options.bins < 1:
            from honing import ConfigError
            raise ConfigError(f"invalid calibration.bins: got {options.bins}; allowed: 1 or more")
        ctx.model.eval()
        with torch.no_grad():
            prob = torch.softmax(ctx.model(ctx.data.test.x), dim=1)
        conf, pred = prob.max(1)
        hit = (pred == ctx.data.test.y).float()
        edges = torch.linspace(0, 1, options.bins + 1)
        ece = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            inside = (conf > lo) & (conf <= hi)
            if inside.any():
                ece += inside.float().mean().item() * abs(hit[inside].mean().item() - conf[inside].mean().item())
        ctx.results["calibration"] = {"ece": ece, "bins": options.bins, "rows": len(hit)}
        return {"ece": round(ece, 4)}


class RoundOptions(Section):
    decimals: int = 2
    """decimals kept of each weight"""


class RoundStep:
    trains = False

    def label(self, options):
        return f"round {options.decimals}"

    def run(self, work, options):
        plain = copy.deepcopy(work.trunk).eval()
        with torch.no_grad():
            for p in plain.parameters():
                p.copy_(torch.round(p, decimals=options.decimals))
        return StepOutput(f"weights rounded to {options.decimals} decimals", None, work.info(plain),
                          write_state(plain.state_dict()))


def register():
    register_section("calibration", CalibrationOptions)
    register_stage(CalibrationStage(), lists=("run", "train"), after="test")
    register_compress_step("round", RoundStep(), options=RoundOptions)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an 'installed' plugin: its module and a dist-info with the entry point."""
    site = tmp_path_factory.mktemp("site")
    (site / "honing_calibration_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "honing_calibration_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: honing-calibration-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[honing.plugins]\ncalibration = honing_calibration_plugin:register\n")
    return site


def _cli(args: list[str], site: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "honing.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _recipe(tmp_path: Path, **sections: object) -> Path:
    recipe = tiny({"tune.n_trials": 2})
    recipe.update(sections)
    return write_recipe(tmp_path / "recipe.yaml", recipe)


def test_a_plugin_stage_and_compression_step_run_through_honing_run(tmp_path: Path, plugin_path: Path) -> None:
    path = _recipe(tmp_path, calibration={"bins": 5}, compress=[{"round": {"decimals": 1}}])
    out = tmp_path / "out"
    done = _cli(["run", str(path), "--out", str(out), "--quiet"], plugin_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    names = [r["stage"] for r in results["stages"]]
    assert names.index("calibration") == names.index("test") + 1  # inserted where the plugin asked
    (record,) = [r for r in results["stages"] if r["stage"] == "calibration"]
    assert record["outcome"] == "done" and 0.0 <= record["ece"] <= 1.0
    assert results["calibration"]["bins"] == 5 and results["calibration"]["rows"] == results["data"]["rows"]["test"]
    assert results["recipe"]["calibration"] == {"bins": 5}  # the plugin's section, typed, in the resolved recipe
    (row,) = [r for r in results["compress"]["stages"] if r["stage"] == "round 1"]
    assert row["notes"] == "weights rounded to 1 decimals" and "accuracy" in row["metrics"]
    from honing import load_model

    loaded = load_model(row["folder"])  # the step's folder is an ordinary model folder
    assert all(float((p * 10).round().sub(p * 10).abs().max()) < 1e-4 for p in loaded.model.state_dict().values())


def test_a_plugin_sections_bad_value_names_its_path(tmp_path: Path, plugin_path: Path) -> None:
    path = _recipe(tmp_path, calibration={"bins": "many"})
    done = _cli(["validate", str(path)], plugin_path)
    assert done.returncode == 2 and "calibration.bins" in done.stderr + done.stdout


def test_without_the_plugin_its_section_and_step_are_unknown(tmp_path: Path) -> None:
    path = _recipe(tmp_path, calibration={"bins": 5})
    done = _cli(["validate", str(path)], None)
    assert done.returncode == 2 and "calibration" in done.stderr + done.stdout
    path = _recipe(tmp_path, compress=[{"round": {"decimals": 1}}])
    done = _cli(["validate", str(path)], None)
    assert done.returncode == 2 and "unknown compression step 'round'" in done.stderr + done.stdout
