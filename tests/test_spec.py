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


USABLE = dict(stable=True, pm_min_deg=65, peaking_db=0.0)


def test_passes_and_shortfall():
    s = parse_spec(GOOD)
    ok = Performance(gain_db=70, ugf_hz=200e6, pm_deg=65, **USABLE)
    assert s.passes(ok) and s.shortfall(ok) == 0 and s.min_margin(ok) > 0
    low = Performance(gain_db=40, ugf_hz=10e6, pm_deg=65, **USABLE)
    assert not s.passes(low)
    assert s.shortfall(low) == pytest.approx(20 / 20 + 1.0)   # 20 dB short (scale 20) + one decade
    none = Performance(gain_db=70, ugf_hz=None, pm_deg=None, **USABLE)
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
    ("targets:\n  stable: maybe\n", "<spec>:2: targets.stable: expected true or false"),
    ("targets:\n  gain_db: {min: 60}\nimplicit: sometimes\n", "<spec>:3: 'implicit' must be true or false"),
    ("targets:\n  settling_s: {max: -1us}\n", "must be positive"),
    ("targets:\n  overshoot_pct: {max: 5V}\n", "unit 'V' does not fit"),
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


def test_implicit_targets_are_added_by_default():
    s = parse_spec(GOOD)
    implicit = {b.metric: b for b in s.implicit_bounds}
    assert set(implicit) == {"stable", "pm_min_deg", "peaking_db"}
    assert implicit["pm_min_deg"].min == 60          # the spec's own pm_deg bound
    assert implicit["peaking_db"].max == 6 and implicit["stable"].min == 1
    assert parse_spec("targets:\n  gain_db: {min: 60}\n").implicit_bounds[1].min == 45   # no pm_deg: 45
    base = Performance(gain_db=70, ugf_hz=200e6, pm_deg=65)
    assert not s.passes(base)                        # unknown stability is not verified
    ringing = base.with_values(stable=True, pm_min_deg=5.0, peaking_db=24.0)
    rows = {r.metric: r for r in s.check(ringing)}
    assert not rows["pm_min_deg"].passed and not rows["peaking_db"].passed and rows["pm_min_deg"].implicit
    assert not rows["gain_db"].implicit
    assert s.shortfall(ringing) == pytest.approx((60 - 5) / 30 + (24 - 6) / 20)
    unstable = base.with_values(stable=False, pm_min_deg=65, peaking_db=0.0)
    assert not s.passes(unstable) and s.shortfall(unstable) == pytest.approx(1.0)
    assert s.passes(base.with_values(**USABLE))


def test_implicit_targets_can_be_replaced_waived_or_switched_off():
    own = parse_spec(GOOD + "  peaking_db: {max: 1dB}\n  stable: false\n")
    assert {b.metric for b in own.implicit_bounds} == {"pm_min_deg"}
    assert [b.max for b in own.targets if b.metric == "peaking_db"] == [1.0]
    assert own.to_dict()["targets"]["stable"] is False
    off = parse_spec(GOOD + "implicit: false\n")
    assert off.implicit_bounds == () and off.bounds == off.targets
    assert off.passes(Performance(gain_db=70, ugf_hz=200e6, pm_deg=65))
    step = parse_spec("targets:\n  overshoot_pct: {max: 5%}\n  settling_s: {max: 20ns}\n  stable: true\n")
    assert step.needs_step() and not parse_spec(GOOD).needs_step()
    assert [b.describe() for b in step.targets] == ["<= 5.00 %", "<= 20 ns", "true"]
    assert {b.metric for b in step.implicit_bounds} == {"pm_min_deg", "peaking_db"}
