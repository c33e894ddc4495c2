"""`cktflow verify` at transistor level: real ngspice, the real sky130 models, per corner and
temperature, the worst case, exit codes 0/1/2, and bad input refused before anything runs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cktflow.resources import templates_dir
from pdk_required import require_pdk

require_pdk()

from cli import main  # noqa: E402

OTA = templates_dir() / "sky130" / "ota5t.cir"


def run(*args):
    return CliRunner().invoke(main, ["verify", *args], catch_exceptions=False)


def spec(tmp_path, targets: str, conditions: str = "{vcm: 1.1V, load_cap: 5pF, corners: [ss, ff]}",
         pdk: str = "pdk: sky130\n") -> str:
    p = tmp_path / "spec.yaml"
    p.write_text(f"name: ota\n{pdk}conditions: {conditions}\ntargets:\n{targets}")
    return str(p)


def test_corners_table_json_and_worst_case(tmp_path):
    s = spec(tmp_path, "  gain_db: {min: 30dB}\n  power_w: {max: 100uW}\n  slew_v_per_s: {min: 3V/us}\n")
    r = run("--spec", s, "--json", str(OTA))
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    (res,) = data["results"]
    assert res["passed"] and [c["condition"] for c in res["conditions"]] == ["ss 27C", "ff 27C"]
    ss, ff = (c["performance"] for c in res["conditions"])
    # ff devices are faster: at the same bias current the UGF is higher and the gate needs less voltage
    assert ff["ugf_hz"] > ss["ugf_hz"]
    assert res["worst_case"]["gain_db"] == min(ss["gain_db"], ff["gain_db"])
    assert res["worst_case"]["power_w"] == max(ss["power_w"], ff["power_w"])
    assert all(c["performance"]["power_w"] == pytest.approx(1.8 * c["performance"]["supply_a"]) for c in res["conditions"])
    checks = {c["metric"]: c for c in res["checks"]}
    assert checks["all_saturated"]["implicit"] and checks["all_saturated"]["passed"]
    # the human table: one column per condition, the worst case, the target
    t = run("--spec", s, str(OTA))
    assert t.exit_code == 0
    assert "ss 27C" in t.output and "ff 27C" in t.output and "worst" in t.output and "V/us" in t.output


def test_a_target_missed_at_one_temperature_fails_with_exit_1(tmp_path):
    # the OTA's UGF is ~4.6 MHz at 27 C and ~4.0 MHz at 125 C (mobility falls with temperature)
    s = spec(tmp_path, "  ugf_hz: {min: 4.3MHz}\n", "{vcm: 1.1V, load_cap: 5pF, corners: [tt], temperatures: [27, 125]}")
    r = run("--spec", s, "--json", str(OTA))
    assert r.exit_code == 1, r.output
    res = json.loads(r.output)["results"][0]
    hot = res["conditions"][1]["performance"]["ugf_hz"]
    assert res["conditions"][0]["performance"]["ugf_hz"] > 4.3e6 > hot
    row = next(c for c in res["checks"] if c["metric"] == "ugf_hz")
    assert not row["passed"] and row["measured"] == hot


def test_pdk_option_and_ports_in_any_order(tmp_path):
    # the same OTA with its ports in another order: verify wraps it, the figures are identical
    text = OTA.read_text().replace(".subckt ota5t inp inn out vdd vss", ".subckt ota5t vss out inn inp vdd")
    other = tmp_path / "reordered.spice"
    other.write_text(text)
    s = tmp_path / "plain.yaml"
    s.write_text("targets: {gain_db: {min: 30dB}}\n")     # a behavioural-looking spec, moved by --pdk
    from cktflow.transistor import from_template
    as_json = tmp_path / "ota.json"                      # the transistor circuit JSON of the same template
    as_json.write_text(from_template("ota5t").to_json())
    r = run("--spec", str(s), "--pdk", "sky130", "--json", str(OTA), str(other), str(as_json))
    assert r.exit_code == 0, r.output
    a, b, c = (x["conditions"][0]["performance"] for x in json.loads(r.output)["results"])
    assert b["gain_db"] == pytest.approx(a["gain_db"], abs=1e-9)
    assert c["gain_db"] == pytest.approx(a["gain_db"], abs=1e-9)
    # the template's own conditions apply where the spec names none (vcm 1.1 V, 5 pF)
    assert json.loads(r.output)["results"][0]["conditions"][0]["conditions"]["vcm"] == 1.1


@pytest.mark.parametrize("edit, message", [
    (("sky130_fd_pr__nfet_01v8 W={w_in}", "sky130_fd_pr__nfet_99v9 W={w_in}"), "unknown model or subcircuit 'sky130_fd_pr__nfet_99v9'"),
    ((".param w_in=4", ".param w_in=0.2"), "w=0.2 is outside the PDK's range"),
    ((".subckt ota5t", ".include /etc/passwd\n.subckt ota5t"), "/etc/passwd"),
    ((".ends ota5t", ".ends ota5t\n.control\nshell touch {marker}\n.endc"), ".control"),
    ((".subckt ota5t inp inn out vdd vss", ".subckt ota5t inp inn out vdd"), "lacks port(s) vss"),
])
def test_bad_circuits_exit_2_naming_the_line_and_nothing_runs(tmp_path, edit, message):
    marker = tmp_path / "pwned"
    text = OTA.read_text().replace(edit[0], edit[1].replace("{marker}", str(marker)))
    assert text != OTA.read_text()
    bad = tmp_path / "bad.cir"
    bad.write_text(text)
    r = run("--spec", spec(tmp_path, "  gain_db: {min: 30dB}\n"), str(bad))
    assert r.exit_code == 2, r.output
    assert message in r.output and "bad.cir" in r.output
    assert "measuring" not in r.output and not marker.exists()


def test_an_unknown_condition_exits_2_naming_it(tmp_path):
    s = spec(tmp_path, "  gain_db: {min: 30dB}\n", "{vcm: 1.1V, humidity: 40}")
    r = run("--spec", s, str(OTA))
    assert r.exit_code == 2 and "spec.yaml:3: unknown condition 'humidity'" in r.output
