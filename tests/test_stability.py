"""Usable in feedback: peaking, pm_min, exact poles and the follower's step, against closed forms
and through real ngspice (metrics.md). The pole computation and the transient must agree."""

import math

import numpy as np
import pytest

from cktflow.circuit import wrap_follower
from spice_sim import SimJob
from spice_sim.mna import parse_linear, poles, spice_number

SOURCE = "V0 in 0 DC 0 AC 1"
AC = ".ac dec 100 1 100G\n.end"


def deck(body: str, title: str = "closed form") -> str:
    return f"{title}\n{body}\n{SOURCE}\n{AC}\n"


def job(body: str) -> SimJob:
    return SimJob(deck(body), follower=wrap_follower(body), keep_waveform=True)


def stages(gains_r_c: list[tuple[float, float, float]]) -> str:
    """A chain of gm stages (each inverting: G sinks gm*V(in) from its node)."""
    lines, prev = [], "in"
    for k, (gm, r, c) in enumerate(gains_r_c, 1):
        node = "out" if k == len(gains_r_c) else f"n{k}"
        lines += [f"G{k} {node} 0 {prev} 0 {gm}", f"R{k} {node} 0 {r}", f"C{k} {node} 0 {c}"]
        prev = node
    return "\n".join(lines)


def test_spice_numbers():
    assert spice_number("1.5k") == 1500 and spice_number("1Meg") == 1e6 and spice_number("50f") == 50e-15
    # as in SPICE, a letter after the number is a scale first: 10pF is 10 p, 2F is 2 femto
    assert spice_number("10pF") == pytest.approx(1e-11) and spice_number("2F") == pytest.approx(2e-15)
    assert spice_number("{x}") is None


def test_single_pole_poles_and_margins(simulator):
    gm, r, c = 1e-3, 1e6, 1e-12
    res = simulator.run(job(stages([(gm, r, c)])))
    assert res.ok, res.message
    p = res.performance
    ol, cl = res.poles.open_loop, res.poles.closed_loop
    assert len(ol) == 1 and ol[0].real == pytest.approx(-1 / (r * c), rel=1e-9) and abs(ol[0].imag) < 1e-6
    assert len(cl) == 1 and cl[0].real == pytest.approx(-(1 + gm * r) / (r * c), rel=1e-9)
    assert res.poles.sign == -1                  # inverting: the loop is closed on the other input
    assert p.stable is True and p.peaking_db == pytest.approx(0, abs=1e-6)
    assert p.pm_min_deg == pytest.approx(p.pm_deg, abs=1e-9) and p.pm_deg == pytest.approx(90, abs=0.5)
    # a first-order follower: no overshoot, 1 % settling after ln(100) closed-loop time constants
    # (the closed loop's DC gain is A/(1+A), the final value the step settles to)
    tau = r * c / (1 + gm * r)
    assert p.overshoot_pct == pytest.approx(0, abs=0.05)
    assert p.settling_s == pytest.approx(tau * math.log(100), rel=0.02)


def test_two_pole_amplifier(simulator):
    v = [(2e-3, 1e6, 0.5e-12), (4e-3, 50e3, 0.2e-12)]
    res = simulator.run(job(stages(v)))
    assert res.ok, res.message
    p = res.performance
    expected = sorted(-1 / (r * c) for _, r, c in v)
    assert sorted(x.real for x in res.poles.open_loop) == pytest.approx(expected, rel=1e-9)
    # closed loop: (1 + s t1)(1 + s t2) + A = 0
    t1, t2 = (r * c for _, r, c in v)
    a0 = np.prod([gm * r for gm, r, _ in v])
    roots = np.roots([t1 * t2, t1 + t2, 1 + a0])
    got = sorted(res.poles.closed_loop, key=lambda z: z.imag)
    want = sorted(roots, key=lambda z: z.imag)
    assert np.allclose(got, want, rtol=1e-8)
    assert res.poles.sign == 1 and p.stable is True
    assert p.peaking_db == pytest.approx(0, abs=1e-6)
    assert p.pm_min_deg == pytest.approx(p.pm_deg, abs=1e-9)


@pytest.mark.parametrize("a, stable", [(3.0, False), (1.8, True)])
def test_three_identical_poles_unstable_above_a_gain_of_8(simulator, a, stable):
    """Three identical real poles, DC gain A = a^3: unstable in unity feedback exactly when A > 8.
    The exact poles and the ngspice transient of the follower agree."""
    gm, c = 1e-3, 1e-12
    r = a / gm
    res = simulator.run(job(stages([(gm, r, c)] * 3)))
    assert res.ok, res.message
    p = res.performance
    # closed loop: (1 + s tau)^3 = -s*A  ->  s = (-1 + (A)^(1/3) e^{+-j pi/3}) / tau for the complex pair
    tau = r * c
    pair = (-1 + a * np.exp(1j * np.pi / 3)) / tau
    assert any(abs(z - pair) < 1e-6 * abs(pair) for z in res.poles.closed_loop)
    assert p.stable is stable and res.poles.stable is stable
    assert res.poles.open_loop_stable
    y, t = res.step, res.time
    final = a ** 3 / (1 + a ** 3)
    if stable:
        assert p.settling_s is not None and abs(y[-1] - final) < 0.01 * final
    else:
        assert p.settling_s is None and np.max(np.abs(y)) > 10 * final     # the follower runs away
        assert p.pm_min_deg < 0                                              # phase past -180 where |L| > 1
    # the transient alone (poles switched off) reaches the same verdict
    alone = simulator.run(SimJob(deck(stages([(gm, r, c)] * 3)), follower=wrap_follower(stages([(gm, r, c)] * 3)),
                                 poles=False))
    assert alone.performance.stable is stable


def test_complex_pair_peaking_and_follower_overshoot(simulator):
    """A = 1 and a complex pole pair of quality factor Q = 10: the open loop peaks by 20 log10 Q; the
    follower is a second-order system with wn = w0 sqrt(2), zeta = 1 / (2 Q sqrt(2))."""
    q, l, c = 10.0, 1e-6, 1e-12
    r = math.sqrt(l / c) / q
    body = f"E1 x 0 in 0 1\nR1 x m {r}\nL1 m out {l}\nC1 out 0 {c}"
    res = simulator.run(job(body))
    assert res.ok, res.message
    p = res.performance
    w0 = 1 / math.sqrt(l * c)
    assert p.peaking_db == pytest.approx(20 * math.log10(q), abs=0.1)
    pair = [z for z in res.poles.open_loop if z.imag > 0][0]
    assert abs(pair) == pytest.approx(w0, rel=1e-9) and -abs(pair) / (2 * pair.real) == pytest.approx(q, rel=1e-9)
    zeta = 1 / (2 * q * math.sqrt(2))
    overshoot = 100 * math.exp(-math.pi * zeta / math.sqrt(1 - zeta ** 2))
    assert p.overshoot_pct == pytest.approx(overshoot, abs=1.0)
    assert p.stable is True


def test_linear_parser_refuses_what_it_cannot_solve():
    assert parse_linear("t\nM1 d g s b nch W=1u L=1u\n") is None
    assert parse_linear("t\nX1 a b sub\n") is None
    assert parse_linear("t\nR1 a b {rval}\n") is None
    lin = parse_linear("t\nR1 a 0 1k\n+\nC1 a 0 1p ; note\n* comment\nI1 a 0 1m\nV1 in 0 AC 1\n")
    assert lin is not None and lin.resistors == [("a", "0", 1e3)] and lin.capacitors == [("a", "0", 1e-12)]
    assert poles(lin, "in", "missing") is None


def test_poles_and_transient_agree_on_generated_circuits(simulator):
    """Independent verdicts: the exact closed-loop poles and the follower's ngspice transient (poles
    switched off) agree on every Bench-101-style circuit with a unity-gain crossing drawn here."""
    from cktflow.circuit import OcbGenerator, follower_testbench, testbench

    checked = unstable = 0
    for c in OcbGenerator(seed=11).take(150):
        exact = simulator.run(SimJob(testbench(c)))
        if not exact.ok or exact.performance.ugf_hz is None:
            continue
        alone = simulator.run(SimJob(testbench(c), follower=follower_testbench(c), poles=False))
        assert alone.ok, alone.message
        assert alone.performance.stable == exact.performance.stable, (str(c), exact.poles.closed_loop)
        checked += 1
        unstable += not exact.performance.stable
    assert checked >= 100 and 0 < unstable < checked      # both verdicts occur
