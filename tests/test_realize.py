"""Realisation of OCB circuits checked against reference values computed independently."""

import pytest

from cktflow.circuit import Circuit, Node, netlist_body, testbench
from spice_sim import SimJob, check_netlist


def worked_example() -> Circuit:
    # ocb-generator.md section 4: S1 type 6 v=20, S2 type 11 (C v=30, gm v=50),
    # branch A type 8 v=12 anchored (S1, Out), P type 2 v=4 from S1.
    nodes = (Node(0, 0), Node(1, 1), Node(6, 2, {"gm": 2e-3}), Node(11, 3, {"C": 300e-15, "gm": 5e-3}),
             Node(8, 5, {"gm": 1.2e-3}), Node(2, 6, {"R": 0.4e6}))
    edges = ((0, 2), (2, 3), (3, 1), (2, 4), (4, 1), (2, 5), (5, 1))
    return Circuit(nodes, edges)


def test_worked_example_netlist_lines():
    body = netlist_body(worked_example())
    assert "G2 n1 0 in 0 2m" in body
    assert "G3 out 0 n1 0 -5m" in body          # -gm+ : negative gm
    assert "C3 n1 out 300f" in body
    assert "G4 n1 0 out 0 1.2m" in body          # feedback: pins swapped, loads n1
    assert "R04 n1 0 1Meg" in body
    assert "R5 n1 out 400k" in body


def test_worked_example_measurements(simulator):
    res = simulator.run(SimJob(testbench(worked_example())))
    assert res.ok, res.message
    p = res.performance
    assert p.gain_db == pytest.approx(4.46, abs=0.05)
    assert p.ugf_hz == pytest.approx(1.642e9, rel=0.01)
    # angle(H) at the UGF is -61.5 deg, so the OCB label PM is 180 - 61.5
    assert p.ocb_pm_deg == pytest.approx(118.5, abs=0.5)


def test_repo_circuit_test_example(simulator):
    # circuit_test.txt: -gm+ -1.0 mS; +gm+ 0.8 mS; -gm- -0.1 mS on (In, Out); R 0.4 Mohm n1-out
    nodes = (Node(0, 0), Node(1, 1), Node(7, 2, {"gm": 1e-3}), Node(6, 3, {"gm": 0.8e-3}),
             Node(9, 5, {"gm": 0.1e-3}), Node(2, 6, {"R": 0.4e6}))
    edges = ((0, 2), (2, 3), (3, 1), (0, 4), (4, 1), (2, 5), (5, 1))
    res = simulator.run(SimJob(testbench(Circuit(nodes, edges))))
    p = res.performance
    assert p.gain_db == pytest.approx(51.99, abs=0.05)
    assert p.ugf_hz == pytest.approx(2.846e9, rel=0.01)
    assert p.ocb_pm_deg == pytest.approx(-179.55, abs=0.5)


def test_testbench_passes_the_safety_check():
    deck = testbench(worked_example())
    checked = check_netlist(deck)
    assert {"in", "out", "n1"} <= checked.nodes
