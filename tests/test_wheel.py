"""The wheel ships what cktflow needs: built from this checkout, installed into a clean virtual
environment without the ml extra (no torch), `cktflow verify` runs from it and finds the PDK,
the templates and the shipped model's files inside the installed package."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.mark.slow
def test_the_wheel_installs_and_verifies_without_torch(tmp_path):
    wheels = tmp_path / "wheels"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(ROOT)])
    assert "BuildBackendWarning" not in r.stdout + r.stderr and "SetuptoolsDeprecationWarning" not in r.stderr
    (wheel,) = wheels.glob("cktflow-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)])     # no extras: numpy, networkx, click, pyyaml, PySpice
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0

    work = tmp_path / "work"                 # away from the checkout, so only the installed copy is importable
    work.mkdir()
    spec = shutil.copy(ROOT / "examples" / "spec.yaml", work)
    circuit = shutil.copy(ROOT / "examples" / "circuits" / "two_stage_miller.json", work)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    cktflow = str(env_dir / "bin" / "cktflow")
    r = _run([cktflow, "verify", "--spec", spec, "--json", circuit], cwd=work, env=env)
    assert '"passed": true' in r.stdout
    where = _run([str(py), "-c", "import cktflow.resources as r; print(r.pdk_dir()); print(r.templates_dir()); "
                  "print(r.weights_dir())"], cwd=work, env=env).stdout.split()
    for folder in where:
        assert str(env_dir) in folder and Path(folder).is_dir(), folder
    assert (Path(where[2]) / "default.pt").is_file() and (Path(where[2]) / "predictor.pt").is_file()
    assert (Path(where[2]) / "sky130_predictor.pt").is_file()          # the transistor-level predictor ships too
    assert (Path(where[2]) / "sky130_generator.pt").is_file()          # and the full-spec generator
    version = _run([cktflow, "--version"], cwd=work, env=env).stdout
    assert "cktflow 0.1.0" in version and "sha256" in version
