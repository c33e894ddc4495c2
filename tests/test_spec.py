"""Spec files: SI units, and rejection messages that name file, line and field."""

import pytest

from cktflow.spec import SpecError, load_spec, parse_spec
from spice_sim import Performance

GOOD = """name: demo
targets:
  gain_db: {min: 60dB}
  ugf_hz:  {min: 100MHz, max: 2.5GHz}
  pm_deg:  {min: 60}
"""


def test_parse_good_spec():
    s = parse_spec(GOOD)
    b = {x.metric: x for x in s.targets}
    assert b["gain_db"].min == 60
    assert b["ugf_hz"].min == pytest.approx(100e6) and b["ugf_hz"].max == pytest.approx(2.5e9)
    assert b["pm_deg"].min == 60 and s.name == "demo" and s.objective == "max_margin"


def test_example_spec_loads():
    s = load_spec("examples/spec.yaml")
    assert {b.metric for b in s.targets} == {"gain_db", "ugf_hz", "pm_deg"}


def test_passes_and_shortfall():
    s = parse_spec(GOOD)
    ok = Performance(gain_db=70, ugf_hz=200e6, pm_deg=65)
    assert s.passes(ok) and s.shortfall(ok) == 0 and s.min_margin(ok) > 0
    low = Performance(gain_db=40, ugf_hz=10e6, pm_deg=65)
    assert not s.passes(low)
    assert s.shortfall(low) == pytest.approx(20 / 20 + 1.0)   # 20 dB short (scale 20) + one decade
    none = Performance(gain_db=70, ugf_hz=None, pm_deg=None)
    assert not s.passes(none) and s.shortfall(none) > s.shortfall(low)


@pytest.mark.parametrize("text, message", [
    ("targets:\n  gain: {min: 60}\n", "<spec>:2: unknown metric 'gain'"),
    ("targets:\n  gain_db: {min: 60}\nfoo: 1\n", "<spec>:3: unknown field 'foo'"),
    ("targets:\n  ugf_hz: {min: 100MV}\n", "<spec>:2: targets.ugf_hz.min: '100MV': unit 'V' does not fit"),
    ("targets:\n  gain_db: {minimum: 60}\n", "<spec>:2: targets.gain_db: unknown bound 'minimum'"),
    ("targets:\n  gain_db: {min: lots}\n", "<spec>:2: targets.gain_db.min: cannot read 'lots'"),
    ("targets:\n  gain_db: {min: 80, max: 60}\n", "min 80 is above max 60"),
    ("targets:\n  gain_db: 60\n", "<spec>:2: targets.gain_db: expected a mapping"),
    ("targets:\n  ugf_hz: {min: 0}\n", "must be positive"),
    ("name: x\n", "missing field 'targets'"),
    ("targets: [1, 2\n", "not valid YAML"),
    ("targets:\n  gain_db: {min: 60}\nobjective: fastest\n", "<spec>:3: unknown objective 'fastest'"),
    ("targets:\n  gain_db: {min: 60}\n  gain_db: {min: 70}\n", "given twice"),
])
def test_bad_specs_are_rejected_with_file_line_field(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert message in str(err.value)


def test_load_spec_names_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("targets:\n  pm_deg: {min: 60 furlongs}\n")
    with pytest.raises(SpecError, match=rf"{p}:2: targets.pm_deg.min"):
        load_spec(p)
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "missing.yaml")
