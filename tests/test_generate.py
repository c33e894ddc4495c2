"""`cktflow generate` end to end on the shipped model: exit codes, the report, and independent re-verification."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli import main

SPEC = "examples/spec.yaml"


def _shipped_checkpoint():
    try:
        from cktflow.model.sample import default_checkpoint
    except ImportError as exc:     # torch missing
        pytest.skip(f"the model cannot be imported here: {exc}")
    path = default_checkpoint()
    if not path.is_file():
        pytest.skip(f"the shipped checkpoint {path} does not exist yet (make model)")
    return path


def test_generate_verifies_circuits_that_verify_separately(tmp_path):
    _shipped_checkpoint()
    out = tmp_path / "gen"
    r = CliRunner().invoke(main, ["generate", "--spec", SPEC, "-n", "8", "--budget", "60", "--out", str(out),
                                  "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    report = json.loads((out / "report.json").read_text())
    assert data["success"] and report["success"] and report["verified"] >= 1
    assert report["simulations"] <= 60
    assert report["provenance"]["model_sha256"] != "missing" and report["provenance"]["run_id"]
    assert report["provenance"]["predictor_sha256"] != "missing"
    verified = [o for o in report["outcomes"] if o["verified"]]
    assert verified and all(c["passed"] for o in verified for c in o["checks"])
    checks = {c["metric"]: c for c in verified[0]["checks"]}
    assert set(checks) == {"gain_db", "ugf_hz", "pm_deg", "stable", "pm_min_deg", "peaking_db"}
    assert [m for m, c in checks.items() if c["implicit"]] == ["stable", "pm_min_deg", "peaking_db"]
    md = (out / "report.md").read_text()
    assert "verified by ngspice" in md and "| gain_db |" in md and "Bode plot" in md
    for o in verified:
        for key in ("json", "spice", "bode", "step"):
            assert (out / o["files"][key]).is_file(), o["files"]
    # a separate process measures every circuit called verified again, from its written JSON
    paths = [str(out / o["files"]["json"]) for o in verified]
    proc = subprocess.run([sys.executable, "-m", "cli", "verify", "--spec", SPEC, "--json", *paths],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = json.loads(proc.stdout)
    assert again["passed"] and len(again["results"]) == len(verified)


def test_generate_unreachable_spec_exits_1_and_names_the_closest(tmp_path):
    _shipped_checkpoint()
    spec = tmp_path / "never.yaml"
    spec.write_text("name: never\ntargets:\n  gain_db: {min: 400dB}\n  ugf_hz: {min: 100MHz}\n")
    out = tmp_path / "gen"
    r = CliRunner().invoke(main, ["generate", "--spec", str(spec), "-n", "4", "--top-k", "2", "--budget", "24",
                                  "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert "no circuit met 'never'" in r.output and "closest misses by a normalised shortfall of" in r.output
    report = json.loads((out / "report.json").read_text())
    assert not report["success"] and report["closest_shortfall"] > 0
    assert report["simulations"] <= 24
    assert report["second_batch"] >= 1 and report["candidates"] > 4     # the model proposed again, wider
    assert not any(o["verified"] for o in report["outcomes"])
