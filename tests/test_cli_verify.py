"""`cktflow verify`: exit codes, table and --json output, with real ngspice."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli import main

SPEC = "examples/spec.yaml"
MILLER_JSON = "examples/circuits/two_stage_miller.json"
MILLER_CIR = "examples/netlists/miller.cir"


def run(*args):
    return CliRunner().invoke(main, ["verify", *args], catch_exceptions=False)


def test_passing_circuit_exits_0_with_table():
    r = run("--sim", "ngspice", "--spec", SPEC, MILLER_JSON)
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output and "ugf_hz" in r.output and "159.9 MHz" in r.output


def test_json_output_is_parseable_and_complete():
    r = run("--spec", SPEC, "--json", MILLER_JSON, MILLER_CIR)
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["passed"] is True and len(data["results"]) == 2
    perf = data["results"][1]["simulation"]["performance"]
    assert perf["gain_db"] == pytest.approx(140, abs=0.1)
    assert data["results"][0]["checks"][0]["metric"] == "gain_db"


def test_failing_target_exits_1(tmp_path):
    spec = tmp_path / "hard.yaml"
    spec.write_text("targets:\n  ugf_hz: {min: 10GHz}\n")
    r = run("--spec", str(spec), MILLER_CIR)
    assert r.exit_code == 1
    assert "FAIL" in r.output


def test_bad_spec_exits_2_naming_the_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("targets:\n  gain_db: {min: 60}\n  slew: {min: 1}\n")
    r = run("--spec", str(spec), MILLER_CIR)
    assert r.exit_code == 2
    assert f"{spec}:3: unknown metric 'slew'" in r.output


def test_hostile_netlist_exits_2_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    net = tmp_path / "evil.cir"
    net.write_text(f"* evil\nG1 out 0 in 0 1m\nR1 out 0 1k\n.control\nshell touch {marker}\n.endc\n")
    r = run("--spec", SPEC, str(net))
    assert r.exit_code == 2 and "evil.cir:4" in r.output
    assert not marker.exists()


def test_missing_output_node_exits_2(tmp_path):
    net = tmp_path / "noout.cir"
    net.write_text("* x\nG1 n9 0 in 0 1m\nR1 n9 0 1k\n")
    r = run("--spec", SPEC, str(net))
    assert r.exit_code == 2 and "has no node 'out'" in r.output
    r = run("--spec", SPEC, "--output-node", "n9", str(net))
    assert r.exit_code == 1   # measured, but 0 dB gain misses the spec
    assert run("--spec", SPEC, "--output", "n9", str(net)).exit_code == 1     # the old spelling, hidden


def test_invalid_circuit_json_exits_2(tmp_path):
    bad = tmp_path / "c.json"
    data = json.loads(open(MILLER_JSON).read())
    data["edges"].append([1, 2])   # a cycle
    bad.write_text(json.dumps(data))
    r = run("--spec", SPEC, str(bad))
    assert r.exit_code == 2 and "cycle" in r.output


def test_netlist_ngspice_rejects_is_reported_as_failure(tmp_path):
    net = tmp_path / "broken.cir"
    net.write_text("* x\nG1 out 0 in 0 1m\nR1 out 0 1Meg 7 8 9\n")
    r = run("--spec", SPEC, "--json", str(net))
    assert r.exit_code == 1
    sim = json.loads(r.output)["results"][0]["simulation"]
    assert sim["failure"] == "bad_netlist" and "unknown parameter" in sim["message"]


def test_import_cktflow_loads_neither_torch_nor_ray():
    code = ("import sys, cktflow, cktflow.circuit, cktflow.spec, cktflow.flow, cli; "
            "print([m for m in ('torch', 'ray', 'PySpice') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
