""""Verified" means usable in feedback: the circuits `make demo` called verified before the implicit
targets fail them now, named in the report; netlists get the same checks as circuits."""

import json
from pathlib import Path

from click.testing import CliRunner

from cli import main
from cktflow.flow import load_design, verify_design
from cktflow.spec import parse_spec

SPEC = "examples/spec.yaml"
DEMO = sorted(str(p) for p in Path("tests/data/demo-2026-12").glob("demo-*.json"))


def test_the_old_demo_circuits_fail_the_default_targets():
    assert len(DEMO) == 4
    r = CliRunner().invoke(main, ["verify", "--spec", SPEC, *DEMO], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert r.output.count(": FAIL") == 4 and "0 of 4 circuit(s) meet" in r.output
    for metric in ("pm_min_deg *", "peaking_db *", "stable *"):
        assert all(line.rstrip().endswith("FAIL") for line in r.output.splitlines() if line.startswith(metric))
    assert "open-loop pole(s) in the right half-plane" in r.output
    js = CliRunner().invoke(main, ["verify", "--spec", SPEC, "--json", *DEMO], catch_exceptions=False)
    for res in json.loads(js.output)["results"]:
        checks = {c["metric"]: c for c in res["checks"]}
        assert not checks["pm_min_deg"]["passed"] and checks["pm_min_deg"]["measured"] < 10
        assert not checks["peaking_db"]["passed"] and checks["peaking_db"]["measured"] > 20
        assert checks["gain_db"]["passed"] and checks["ugf_hz"]["passed"] and checks["pm_deg"]["passed"]
        assert res["simulation"]["poles_rad_s"]["open_loop_rhp"] == 1


def test_user_targets_only_when_implicit_is_off(tmp_path):
    spec = tmp_path / "own.yaml"
    spec.write_text(Path(SPEC).read_text() + "implicit: false\n")
    r = CliRunner().invoke(main, ["verify", "--spec", str(spec), *DEMO], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "user's targets only" in r.output and "pm_min_deg" not in r.output.split("metric")[1].split("\n\n")[0]


def test_a_netlist_gets_poles_and_a_follower_transient(simulator, tmp_path):
    """A SPICE netlist with its own input source: the follower replaces that source with the loop
    closure; a linear netlist gets exact poles, and the transient agrees."""
    body = "\n".join([f"G{k} n{k} 0 {'in' if k == 1 else f'n{k - 1}'} 0 1m\nR{k} n{k} 0 3k\nC{k} n{k} 0 1p"
                      for k in (1, 2, 3)]) + "\nRout n3 out 1\nVsig in 0 DC 0 AC 1\n"
    path = tmp_path / "three.cir"
    path.write_text("* three poles, gain 27\n" + body + ".end\n")
    design = load_design(path)
    assert "Vsig" not in design.follower and "Ecktflow_fb in 0" in design.follower
    report = verify_design(design, parse_spec("targets:\n  gain_db: {min: 20}\n"), simulator)
    perf = report.result.performance
    assert report.result.poles is not None and perf.stable is False and not report.passed
    rows = {r.metric: r for r in report.rows}
    assert rows["stable"].implicit and not rows["stable"].passed and rows["gain_db"].passed
