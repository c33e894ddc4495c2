"""`cktflow export` on a transistor circuit JSON: the PDK's files, refusals, and nothing overwritten."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from pdk_required import require_pdk

require_pdk()

from cli import main  # noqa: E402
from cktflow.transistor import from_template  # noqa: E402


def run(*args):
    return CliRunner().invoke(main, ["export", *args], catch_exceptions=False)


@pytest.fixture
def ota_json(tmp_path):
    p = tmp_path / "ota.json"
    p.write_text(from_template("ota5t").to_json())
    return p


def test_all_formats_and_the_testbench_runs_in_plain_ngspice(tmp_path, ota_json):
    out = tmp_path / "out"
    r = run("--format", "all", "-o", str(out), "--json", str(ota_json))
    assert r.exit_code == 0, r.output
    written = json.loads(r.output)
    assert set(written) >= {"spice", "testbench", "xschem", "kicad", "json", "spiceinit"}
    assert "sky130_fd_pr/nfet_01v8.sym" in (out / "ota5t.sch").read_text()
    sub = (out / "ota5t.spice").read_text()
    assert ".subckt ota5t inp inn out vdd vss" in sub.lower() and "{" not in sub
    p = subprocess.run(["ngspice", "-b", "ota5t_tb.cir"], cwd=out, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "gain_db" in p.stdout


def test_refusals_and_no_overwrite(tmp_path, ota_json):
    r = run("--format", "spectre", "-o", str(tmp_path / "x.scs"), str(ota_json))
    assert r.exit_code == 2 and "not available for transistor circuits" in r.output
    mine = tmp_path / "mine.spice"
    mine.write_text("my own work\n")
    r = run("--format", "spice", "-o", str(mine), str(ota_json))
    assert r.exit_code == 2 and "exists" in r.output and mine.read_text() == "my own work\n"
    r = run("--format", "spice", "-o", str(mine), "--force", str(ota_json))
    assert r.exit_code == 0 and ".subckt ota5t" in mine.read_text().lower()
