"""Measurement accuracy against closed-form answers, through real ngspice."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from spice_sim import SimJob, measure

SINGLE_POLE = """single pole stage
G1 out 0 in 0 {gm}
R1 out 0 {r}
C1 out 0 {c}
V0 in 0 DC 0 AC 1
.ac dec 100 1 100G
.end
"""


@pytest.mark.parametrize("sign", [+1, -1])
def test_single_pole_stage_matches_closed_form(simulator, sign):
    gm, r, c = 1e-3, 1e6, 1e-12
    res = simulator.run(SimJob(SINGLE_POLE.format(gm=sign * gm, r=r, c=c)))
    assert res.ok, res.message
    p = res.performance
    a0 = gm * r
    fp = 1 / (2 * math.pi * r * c)
    ugf = fp * math.sqrt(a0 ** 2 - 1)
    pm = 180 - math.degrees(math.atan(ugf / fp))
    assert p.gain_db == pytest.approx(20 * math.log10(a0), abs=0.1)
    assert p.ugf_hz == pytest.approx(ugf, rel=0.01)
    assert p.pm_deg == pytest.approx(pm, abs=0.5)
    # the metrics.md check values
    assert p.gain_db == pytest.approx(60, abs=0.1)
    assert p.ugf_hz == pytest.approx(159.15e6, rel=0.01)
    assert p.pm_deg == pytest.approx(90, abs=0.5)
    assert p.bw_hz == pytest.approx(fp, rel=0.01)
    # the OCB label convention depends on the sign; the design PM does not
    assert p.ocb_pm_deg == pytest.approx(-90 if sign > 0 else 90, abs=0.5)


TWO_STAGE = """two stages
G1 n1 0 in 0 {gm1}
R1 n1 0 {r1}
C1 n1 0 {c1}
G2 out 0 n1 0 {gm2}
R2 out 0 {r2}
C2 out 0 {c2}
V0 in 0 DC 0 AC 1
.ac dec 100 1 100G
.end
"""


def test_two_stage_network_matches_closed_form(simulator):
    v = dict(gm1=2e-3, r1=1e6, c1=0.5e-12, gm2=4e-3, r2=50e3, c2=0.2e-12)
    res = simulator.run(SimJob(TWO_STAGE.format(**v)))
    assert res.ok, res.message
    p = res.performance

    def h(f):
        s = 2j * math.pi * f
        return (-v["gm1"] * v["r1"] / (1 + s * v["r1"] * v["c1"])) * (-v["gm2"] * v["r2"] / (1 + s * v["r2"] * v["c2"]))

    ugf = brentq(lambda f: abs(h(f)) - 1, 1e3, 1e11, xtol=1e-3)
    lag = math.degrees(math.atan(ugf * 2 * math.pi * v["r1"] * v["c1"]) + math.atan(ugf * 2 * math.pi * v["r2"] * v["c2"]))
    assert p.gain_db == pytest.approx(20 * math.log10(v["gm1"] * v["r1"] * v["gm2"] * v["r2"]), abs=0.1)
    assert p.ugf_hz == pytest.approx(ugf, rel=0.01)
    assert p.pm_deg == pytest.approx(180 - lag, abs=0.5)
    assert p.pm_deg < 90  # two poles: the margin really is below a single pole's


def test_two_identical_stages_have_120_db(simulator):
    v = dict(gm1=1e-3, r1=1e6, c1=1e-12, gm2=1e-3, r2=1e6, c2=1e-12)
    res = simulator.run(SimJob(TWO_STAGE.format(**v)))
    assert res.performance.gain_db == pytest.approx(120, abs=0.1)


def test_no_unity_gain_crossing_gives_none():
    f = np.logspace(0, 11, 1101)
    h = 0.5 / (1 + 1j * f / 1e6)  # never reaches 0 dB
    p = measure(f, h)
    assert p.ugf_hz is None and p.pm_deg is None and p.ocb_pm_deg is None
    assert p.gain_db == pytest.approx(20 * math.log10(0.5))
    assert p.bw_hz == pytest.approx(1e6, rel=0.01)


def test_gain_margin_of_three_pole_amplifier():
    f = np.logspace(0, 11, 1101)
    fp = 1e6
    h = 100 / (1 + 1j * f / fp) ** 3
    p = measure(f, h)
    # phase lag of 180 deg where each pole contributes 60 deg: f = fp*tan(60 deg)
    f180 = fp * math.tan(math.radians(60))
    expected = -20 * math.log10(100 / (1 + (f180 / fp) ** 2) ** 1.5)
    assert p.gm_db == pytest.approx(expected, abs=0.1)


def test_measure_rejects_mismatched_arrays():
    with pytest.raises(ValueError):
        measure(np.array([1.0, 2.0]), np.array([1.0]))
