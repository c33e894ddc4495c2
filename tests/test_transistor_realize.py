"""Behavioural topology -> sky130 transistors (cktflow.transistor.realize), checked in ngspice.

The behavioural references: a single gm stage is gm*R0 / (1 + s R0 C0) exactly (R0 1 Mohm, C0 50 fF);
multi-stage circuits are measured with cktflow.simulate (the OCB testbench, exact MNA stability).
"""

from __future__ import annotations

import math

import pytest
from pdk_required import require_pdk

from cktflow.circuit import Circuit, Node, OcbGenerator
from cktflow.circuit.validity import analyse
from cktflow.technology import load_technology

TECH = require_pdk("sky130")

from spice_sim.engine import get_engine  # noqa: E402

from cktflow.transistor import OpampBench, TransistorCircuit  # noqa: E402
from cktflow.transistor.netlist import pdk_instances  # noqa: E402
from cktflow.transistor.realize import (REALIZATION_CONDITIONS, RealizationError, dc_gain,  # noqa: E402
                                        realize)

R0, C0 = 1e6, 50e-15


def _circuit(stages, extra=(), edges_extra=()) -> Circuit:
    """In, Out, main stages (type, values) at positions 2.., extra side nodes (type, pos, values)."""
    nodes = [Node(0, 0), Node(1, 1)]
    chain = [0]
    for k, (t, v) in enumerate(stages):
        nodes.append(Node(t, 2 + k, v))
        chain.append(len(nodes) - 1)
    chain.append(1)
    edges = list(zip(chain, chain[1:]))
    for t, pos, v in extra:
        nodes.append(Node(t, pos, v))
    return Circuit(tuple(nodes), tuple(edges) + tuple(edges_extra))


def _measure(z):
    text, name, sizes = z.circuit.dut()
    with OpampBench(text, name, sizes, pdk="sky130", engine=get_engine()) as bench:
        return bench.measure(z.conditions, noise=False, step=False, swing=False)


def test_single_stage_realises_to_a_5t_ota_near_its_gain_and_ugf():
    gm = 0.1e-3
    c = _circuit([(6, {"gm": gm})])
    z = realize(c)
    assert z.s1_kind == "diff pair + mirror load"
    mos = [i for i in pdk_instances(z.circuit.body, TECH, params=z.circuit.sizes()) if i.device.type in ("nmos", "pmos")]
    assert len(mos) == 5 + 3                     # the 5T, and the bias reference (two diodes, one mirror)
    m = _measure(z)
    beh_gain = 20 * math.log10(gm * R0)          # 40 dB
    beh_ugf = gm / (2 * math.pi * C0) * math.sqrt(1 - 1 / (gm * R0) ** 2)
    assert m.all_saturated, m.worst_device
    assert abs(m.gain_db - beh_gain) <= 6.0, m.gain_db
    # CL (one C0) plus the devices' own capacitance stand for the behavioural C0 alone
    assert 0.4 <= m.ugf_hz / beh_ugf <= 1.25, m.ugf_hz
    # the mirror's pole (which the behavioural single pole lacks) costs ~20 deg at a 50 fF load
    assert m.pm_deg > 60


def test_two_stage_miller_realises_with_a_mim_capacitor_and_its_phase_margin():
    from cktflow.simulate import simulate
    c = _circuit([(7, {"gm": 0.5e-3}), (10, {"C": 500e-15, "gm": 5e-3})])
    beh = simulate([c], progress=False)[0].performance
    z = realize(c)
    mims = [i for i in pdk_instances(z.circuit.body, TECH, params=z.circuit.sizes()) if i.device.type == "capacitor"]
    assert len(mims) == 1 and mims[0].device.model == "sky130_fd_pr__cap_mim_m3_1"
    assert {s.kind for s in z.stages} >= {"common source"}
    m = _measure(z)
    assert m.all_saturated, m.worst_device
    assert abs(m.pm_deg - beh.pm_deg) <= 20, (m.pm_deg, beh.pm_deg)
    assert 0.3 <= m.ugf_hz / beh.ugf_hz <= 1.5, (m.ugf_hz, beh.ugf_hz)


def test_a_capacitor_beyond_one_mim_becomes_an_array_of_equal_squares():
    # 5 pF needs 50 x 50 um of MIM; cap_mim_m3_1 stops at 30 um a side, so a layout draws an array
    from cktflow.simulate import simulate
    from cktflow.transistor.cells import mim_capacitance
    c = _circuit([(7, {"gm": 0.5e-3}), (10, {"C": 5e-12, "gm": 5e-3})])
    beh = simulate([c], progress=False)[0].performance
    z = realize(c)
    mims = [i for i in pdk_instances(z.circuit.body, TECH, params=z.circuit.sizes()) if i.device.type == "capacitor"]
    assert len(mims) >= 3
    assert len({(i.sizes["w"], i.sizes["l"]) for i in mims}) == 1         # one size for the whole array
    total = sum(mim_capacitance(i.sizes["w"]) for i in mims)
    assert abs(total / 5e-12 - 1) < 0.02, total
    m = _measure(z)
    assert 0.3 <= m.ugf_hz / beh.ugf_hz <= 1.5, (m.ugf_hz, beh.ugf_hz)


def test_a_stage_kind_outside_the_family_raises_naming_it():
    c = _circuit([(6, {"gm": 1e-3}), (14, {"R": 1e6, "gm": 1e-3})])
    assert not analyse(c).problems                 # a valid behavioural circuit
    with pytest.raises(RealizationError, match=r"R\|\|\+gm\+.*S2"):
        realize(c)
    with pytest.raises(ValueError):                # RealizationError is a ValueError
        realize(c, pdk="ocb_behavioural")


def test_the_realisation_vets_as_a_transistor_circuit():
    gen = OcbGenerator(seed=3)
    z = realize(gen.next())
    tc = z.circuit
    back = TransistorCircuit.from_json(tc.to_json())
    assert back.canonical_hash() == tc.canonical_hash()
    assert back.sizes() == tc.sizes()
    p = next(p for p in tc.params if p.name.startswith("w_"))
    assert tc.snapped(**{p.name: p.value * 1.5}).canonical_hash() != tc.canonical_hash()
    assert "*@ param iref" in tc.dut()[0] or tc.param("iref").unit == "A"


def test_first_sizes_lie_inside_the_pdk_limits_and_on_its_grid():
    gen = OcbGenerator(seed=5)
    for c in gen.take(40):
        try:
            z = realize(c)
        except RealizationError:
            continue
        for inst in pdk_instances(z.circuit.body, TECH, params=z.circuit.sizes()):
            inst.device.check(inst.name, **inst.sizes)      # raises outside the limits or off the grid
        for p in z.circuit.params:
            assert p.problem(p.value) is None


def test_dc_sign_matches_the_behavioural_simulation():
    from cktflow.simulate import simulate
    circuits = OcbGenerator(seed=7).take(30)
    results = simulate(circuits, progress=False)
    checked = 0
    for c, r in zip(circuits, results):
        if r.failure or r.performance.gain_db is None:
            continue
        h0 = dc_gain(c, analyse(c))
        # the label's gain is |H| at 1 Hz: equal to the DC gain unless a pole sits below a few Hz
        if abs(20 * math.log10(abs(h0)) - r.performance.gain_db) < 0.5:
            checked += 1
    assert checked >= 20


def test_realisation_conditions_name_the_load():
    assert REALIZATION_CONDITIONS.cl == pytest.approx(50e-15)
    assert load_technology("sky130").device("res_high_po").model == "sky130_fd_pr__res_high_po"
