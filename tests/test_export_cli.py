"""`cktflow export` and export_all: every file written, readable, and bad input refused (exit 2)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner
from kiutils.schematic import Schematic

from cli import main
from cktflow.circuit import testbench
from cktflow.export import export_all, spectre
from export_helpers import assert_same, reference, simulate, varied_circuits
from spice_sim import SimJob
from spice_sim.engine import get_engine
from spice_sim.jobs import run_job

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "circuits" / "two_stage_miller.json")


def _check_bundle(written, c):
    assert {"spice", "spectre", "xschem", "kicad", "svg"} <= set(written)
    assert_same(simulate(written["spice"].read_text()), reference(c), what="exported .cir")
    scs = written["spectre"]
    assert_same(simulate(spectre.to_spice_deck(spectre.read(scs.read_text(), str(scs)))), reference(c),
                what="exported .scs")
    assert written["xschem"].read_text().startswith("v {xschem")
    Schematic.from_file(str(written["kicad"]))
    ET.parse(written["svg"])


def test_export_all_with_bode(tmp_path):
    c = varied_circuits(1, first_seed=4000)[0]
    result = run_job(get_engine(), SimJob(testbench(c), keep_waveform=True))
    written = export_all(c, tmp_path / "out", "best", result)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "best.cir", "best.kicad_sch", "best.sch", "best.scs", "best.svg", "best_bode.png"]
    assert written["bode"].read_bytes()[:4] == b"\x89PNG"
    _check_bundle(written, c)


def test_export_all_without_waveform(tmp_path):
    c = varied_circuits(1, first_seed=4001)[0]
    written = export_all(c, tmp_path, "c")
    assert "bode" not in written and len(written) == 5


def test_cli_all_json(tmp_path):
    res = CliRunner().invoke(main, ["export", "--format", "all", "--bode", "--json", "-o", str(tmp_path / "o"), EXAMPLE])
    assert res.exit_code == 0, res.output
    written = {k: Path(v) for k, v in json.loads(res.output).items()}
    assert set(written) == {"spice", "spectre", "xschem", "kicad", "svg", "bode", "step"}
    assert all(p.is_file() and p.stem.startswith("two_stage_miller") for p in written.values())


def test_cli_single_format_without_testbench(tmp_path):
    out = tmp_path / "sub" / "m.scs"
    res = CliRunner().invoke(main, ["export", "--format", "spectre", "--no-testbench", "-o", str(out), EXAMPLE])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "vccs" in text and " ac " not in text and "vsource" not in text


def test_cli_bad_input(tmp_path):
    runner = CliRunner()
    netlist = tmp_path / "n.cir"
    netlist.write_text("* n\nR1 in out 1k\n")
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [], "edges": [[0, 1]]}')
    cases = [
        (["--format", "svg", "-o", str(tmp_path / "x.svg"), str(netlist)], "not a netlist"),
        (["--format", "svg", "-o", str(tmp_path / "x.svg"), str(bad)], "bad.json"),
        (["--format", "svg", "--bode", "-o", str(tmp_path / "x.svg"), EXAMPLE], "--bode"),
        (["--format", "svg", "-o", str(tmp_path), EXAMPLE], "is a folder"),
        (["--format", "kicad", "--no-testbench", "-o", str(tmp_path / "x"), EXAMPLE], "--no-testbench"),
        (["--format", "svg", "-o", str(tmp_path / "x.svg"), str(tmp_path / "missing.json")], "missing.json"),
    ]
    for args, message in cases:
        res = runner.invoke(main, ["export", *args])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)


def test_verify_reads_an_exported_spectre_netlist(tmp_path):
    scs = tmp_path / "m.scs"
    assert CliRunner().invoke(main, ["export", "--format", "spectre", "-o", str(scs), EXAMPLE]).exit_code == 0
    spec = Path(EXAMPLE).parent.parent / "spec.yaml"
    runs = [CliRunner().invoke(main, ["verify", "--json", "--spec", str(spec), p]) for p in (EXAMPLE, str(scs))]
    perfs = [json.loads(r.output)["results"][0]["simulation"]["performance"] for r in runs]
    assert runs[0].exit_code == runs[1].exit_code
    for name in ("gain_db", "ugf_hz", "pm_deg"):
        assert abs(perfs[0][name] - perfs[1][name]) <= 1e-6 * abs(perfs[0][name])
    scs.write_text("simulator lang=spectre\nX1 (in out) bsim4\n")
    bad = CliRunner().invoke(main, ["verify", "--spec", str(spec), str(scs)])
    assert bad.exit_code == 2 and "m.scs:2" in bad.output
