"""Specs at transistor level: pdk, conditions, the metric registry's levels, compound units and the
worst case over conditions. Pure parsing and arithmetic: no simulator."""

from __future__ import annotations

import math

import pytest

from cktflow.spec import SpecConditions, SpecError, parse_spec
from cktflow.units import UnitError, format_si, parse_si
from spice_sim.measure import Performance
from spice_sim.metrics import METRIC_UNITS, METRICS, REGISTRY, metrics_at

OTA = """name: ota
pdk: sky130
conditions: {vdd: 1.8V, vcm: 0.9V, load_cap: 1pF, corners: [tt, ss, ff], temperatures: [-40, 27, 125]}
targets:
  gain_db: {min: 30dB}
  ugf_hz: {min: 10MHz}
  pm_deg: {min: 60deg}
  power_w: {max: 100uW}
  slew_v_per_s: {min: 5V/us}
"""


def test_the_issue_spec_parses_with_its_conditions():
    s = parse_spec(OTA, "ota.yaml")
    assert s.pdk == "sky130" and s.level == "transistor"
    assert s.conditions == SpecConditions(vdd=1.8, vcm=0.9, load_cap=1e-12, corners=("tt", "ss", "ff"),
                                          temperatures=(-40.0, 27.0, 125.0))
    b = {x.metric: x for x in s.bounds}
    assert b["power_w"].max == pytest.approx(100e-6) and b["slew_v_per_s"].min == pytest.approx(5e6)
    # at transistor level "usable" includes every device in saturation
    assert [x.metric for x in s.implicit_bounds] == ["stable", "pm_min_deg", "peaking_db", "all_saturated"]
    again = s.to_dict()
    assert again["pdk"] == "sky130" and again["conditions"]["corners"] == ["tt", "ss", "ff"]


def test_todays_yaml_is_still_behavioural():
    s = parse_spec("targets: {gain_db: {min: 60dB}}\n")
    assert s.pdk is None and s.level == "behavioural" and s.conditions is None
    assert "all_saturated" not in {b.metric for b in s.bounds}
    assert "pdk" not in s.to_dict()


@pytest.mark.parametrize("text, message", [
    ("targets: {power_w: {max: 1mW}}\n", "<spec>:1: metric 'power_w' is measured on transistor op-amps only"),
    ("pdk: sky130\ntargets:\n  ocb_pm_deg: {min: 1}\n", "<spec>:3: metric 'ocb_pm_deg' is not measured on transistor"),
    ("pdk: sky130\nconditions: {vdd: 1.8, supply: 2}\ntargets: {gain_db: {min: 1}}\n",
     "<spec>:2: unknown condition 'supply'"),
    ("pdk: sky130\nconditions:\n  corners: [tt, xx]\ntargets: {gain_db: {min: 1}}\n",
     "<spec>:3: conditions.corners: unknown corner 'xx' for PDK sky130"),
    ("pdk: sky130\nconditions: {load_cap: 1pV}\ntargets: {gain_db: {min: 1}}\n", "conditions.load_cap:"),
    ("pdk: sky130\nconditions: {vdd: 1.8, vcm: 2.5}\ntargets: {gain_db: {min: 1}}\n", "conditions.vcm: 2.5 V is outside"),
    ("pdk: sky130\nconditions: {temperatures: [27, 900]}\ntargets: {gain_db: {min: 1}}\n", "900 C is outside"),
    ("pdk: nope\ntargets: {gain_db: {min: 1}}\n", "<spec>:1: pdk: unknown PDK 'nope'"),
    ("conditions: {vdd: 1}\ntargets: {gain_db: {min: 1}}\n", "'conditions' need a transistor PDK"),
    ("pdk: sky130\ntargets:\n  slew_v_per_s: {min: 5A/us}\n", "targets.slew_v_per_s.min: '5A/us': unit"),
])
def test_bad_transistor_specs_name_line_and_field(text, message):
    with pytest.raises(SpecError) as e:
        parse_spec(text)
    assert message in str(e.value)


def test_with_pdk_moves_a_spec_to_transistor_level_and_checks_its_metrics():
    s = parse_spec("targets: {gain_db: {min: 30dB}}\n").with_pdk("sky130")
    assert s.level == "transistor" and s.conditions == SpecConditions()
    with pytest.raises(SpecError, match="ocb_pm_deg"):
        parse_spec("targets: {ocb_pm_deg: {min: 30}}\n").with_pdk("sky130")


@pytest.mark.parametrize("text, unit, value", [
    ("5V/us", "V/s", 5e6), ("2 V/ns", "V/s", 2e9), ("3e6", "V/s", 3e6), ("10nV/rtHz", "V/sqrt(Hz)", 1e-8),
    ("10 nV/sqrt(Hz)", "V/sqrt(Hz)", 1e-8), ("120um2", "um2", 120.0), ("100uW", "W", 1e-4), ("1pF", "F", 1e-12),
])
def test_compound_units(text, unit, value):
    assert parse_si(text, unit) == pytest.approx(value)


@pytest.mark.parametrize("text, unit", [("5V/uss", "V/s"), ("5 V/s/s", "V/s"), ("1mm2", "um2"), ("nanV/rtHz", "V/sqrt(Hz)")])
def test_compound_units_refuse_what_does_not_fit(text, unit):
    with pytest.raises(UnitError):
        parse_si(text, unit)


def test_slew_reads_in_volts_per_microsecond():
    assert format_si(5e6, "V/s") == "5 V/us" and format_si(876.0, "um2") == "876 um2"


def test_registry_is_the_one_list():
    assert METRICS == metrics_at("behavioural") and set(METRIC_UNITS) == set(REGISTRY)
    assert "power_w" in metrics_at("transistor") and "power_w" not in METRICS
    assert "ocb_pm_deg" not in metrics_at("transistor")
    for m in REGISTRY.values():
        assert m.definition and m.levels and m.unit


def test_performance_holds_any_registered_metric_and_refuses_others():
    p = Performance(gain_db=40.0, power_w=7e-5, all_saturated=1)
    assert p.power_w == 7e-5 and p.all_saturated is True and p.cmrr_db is None
    d = p.to_dict()
    assert list(d)[:len(METRICS)] == list(METRICS) and d["power_w"] == 7e-5
    assert Performance.from_dict(d) == p
    with pytest.raises(ValueError, match="unknown performance field 'slew'"):
        Performance(slew=1.0)
    import pickle
    assert pickle.loads(pickle.dumps(p)) == p


def test_worst_case_takes_each_metrics_worst_condition():
    s = parse_spec(OTA)
    tt = Performance(gain_db=40, ugf_hz=20e6, pm_deg=70, power_w=80e-6, slew_v_per_s=6e6, stable=True,
                     pm_min_deg=70, peaking_db=0.0, all_saturated=True)
    ss = tt.with_values(ugf_hz=9e6, power_w=70e-6, pm_deg=75, pm_min_deg=75)
    ff = tt.with_values(ugf_hz=30e6, power_w=95e-6, gain_db=35, all_saturated=False)
    w = s.worst_case([tt, ss, ff])
    assert (w.ugf_hz, w.power_w, w.gain_db, w.pm_deg, w.all_saturated) == (9e6, 95e-6, 35, 70, False)
    assert not s.passes(w) and s.passes(s.worst_case([tt]))
    assert {r.metric for r in s.check(w) if not r.passed} == {"ugf_hz", "all_saturated"}
    # a condition that did not measure a metric makes its worst case missing, never a made-up number
    assert s.worst_case([tt, None]).gain_db is None
    assert math.isnan(s.bounds[0].scaled(None))


def test_size_with_a_transistor_spec_refuses_a_behavioural_circuit_clearly(tmp_path):
    """`size` and `generate` work at transistor level now (tests/test_cli_transistor_design.py);
    a behavioural circuit given to a transistor-level `size` is bad input that says what it is."""
    from click.testing import CliRunner

    from cli import main
    p = tmp_path / "ota.yaml"
    p.write_text(OTA)
    r = CliRunner().invoke(main, ["size", "--spec", str(p), "examples/circuits/two_stage_miller.json"])
    assert r.exit_code == 2 and "looks like a behavioural circuit" in r.output


def test_flywheel_refuses_mixed_levels_and_a_missing_pdk_store(tmp_path):
    from click.testing import CliRunner

    from cli import main
    p = tmp_path / "specs.yaml"
    p.write_text("- name: ota\n  pdk: sky130\n  targets: {gain_db: {min: 30dB}}\n"
                 "- name: beh\n  targets: {gain_db: {min: 30dB}}\n")
    r = CliRunner().invoke(main, ["flywheel", "--spec", str(p), "-o", str(tmp_path / "fw")])
    assert r.exit_code == 2 and "mix levels" in r.output
    p.write_text("- name: ota\n  pdk: sky130\n  targets: {gain_db: {min: 30dB}}\n")
    missing = tmp_path / "none.sqlite"
    r = CliRunner().invoke(main, ["flywheel", "--spec", str(p), "--dataset", str(missing), "-o", str(tmp_path / "fw")])
    assert r.exit_code == 2 and str(missing) in r.output
    assert not (tmp_path / "fw").exists() and not missing.exists()
