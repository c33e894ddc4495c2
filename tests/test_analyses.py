"""spice_sim.analyses on small decks without a PDK (real ngspice): every analysis against a closed
form, parameters altered in place, two sessions and an ordinary run interleaved on one engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spice_sim.analyses import Session, mos_instances
from spice_sim.engine import get_engine
from spice_sim.errors import NetlistError

RC = """v1 in 0 dc {vin} ac 1 pulse(0 1 0 1n 1n 1 2)
r1 in out {r}
c1 out 0 {c}
r2 out 0 {r}"""


@pytest.fixture(scope="module")
def engine():
    return get_engine()


def test_every_analysis_matches_its_closed_form(engine):
    with Session(engine, RC, params={"vin": 2.0, "r": 1e3, "c": 1e-9}) as s:
        op = s.op()
        assert op.voltages["out"] == pytest.approx(1.0)
        assert op.currents["v1"] == pytest.approx(-1e-3)          # ngspice: into the + node
        ac = s.ac(1e3, 1e8, 20, ("out",))
        pole = 1 / (2 * math.pi * 500 * 1e-9)                      # R1 || R2 with C
        k = np.argmin(abs(ac.scale - pole))
        assert abs(ac["out"][k]) == pytest.approx(0.5 / abs(1 + 1j * ac.scale[k] / pole), rel=1e-6)
        dc = s.dc("v1", 0, 2, 0.5, ("out",))
        assert np.allclose(dc["out"], dc.scale / 2)
        tr = s.tran(1e-8, 5e-6, ("out",), tmax=1e-8)
        tau = 500 * 1e-9
        k = np.searchsorted(tr.scale, tau)
        assert tr["out"][k] == pytest.approx(0.5 * (1 - math.exp(-tr.scale[k] / tau)), abs=5e-3)
        nz = s.noise("out", "v1", 10, 1e3, 5)
        # two resistors at 300.15 K in parallel, far below the pole: sqrt(4kT (R1||R2))
        kt4 = 4 * 1.380649e-23 * 300.15
        assert nz.onoise[0] == pytest.approx(math.sqrt(kt4 * 500), rel=1e-3)
        assert nz.inoise[0] == pytest.approx(nz.onoise[0] / 0.5, rel=1e-3)


def test_parameters_change_in_place_and_sessions_interleave(engine):
    a = Session(engine, RC, params={"vin": 2.0, "r": 1e3, "c": 1e-9}, title="a")
    b = Session(engine, RC.replace("r2 out 0 {r}", "r2 out 0 {3*r}"), params={"vin": 4.0, "r": 1e3, "c": 1e-9},
                title="b")
    try:
        assert a.op().voltages["out"] == pytest.approx(1.0)
        assert b.op().voltages["out"] == pytest.approx(3.0)
        assert a.set_params(vin=6.0) and not a.set_params(vin=6.0)
        # an ordinary run (load, run, remove) in between must not disturb either session
        engine.run_ac("x\nv1 in 0 dc 0 ac 1\nr1 in out 1k\nc1 out 0 1n\n.ac dec 5 1 1e6\n.end", ("in", "out"), )
        assert a.op().voltages["out"] == pytest.approx(3.0)
        assert b.op().voltages["out"] == pytest.approx(3.0)
        with pytest.raises(KeyError, match="unknown parameter"):
            a.set_params(nope=1)
    finally:
        a.close()
        b.close()
    with pytest.raises(Exception, match="closed|no longer"):
        a.op()


def test_a_deck_ngspice_cannot_parse_is_a_netlist_error(engine):
    with pytest.raises(NetlistError):
        Session(engine, "r1 a 0 1k\nx1 a b nosuchsubckt")


def test_mos_instances_walks_the_deck_hierarchy():
    deck = """.subckt amp a b
xm1 a b 0 0 nfet W=1 L=1
xin a b inner
.ends amp
.subckt inner p q
xm2 p q 0 0 pfet W=1 L=1
.ends inner
xa n1 n2 amp
xm3 n1 n2 0 0 nfet
+ W=2 L=1"""
    assert mos_instances(deck, {"nfet", "pfet"}) == {"xa.xm1": "nfet", "xa.xin.xm2": "pfet", "xm3": "nfet"}


def test_a_reset_after_another_session_closed_keeps_its_own_deck(engine):
    # ngspice 39 re-parses the removed circuit's deck on the next reset of one that was reset
    # before; the session notices (its title) and loads its own deck again, parameters included
    s1 = Session(engine, "v1 a 0 {va}\nr1 a 0 1k", params={"va": 1.0})
    try:
        s1.set_params(va=2.0)
        with Session(engine, "v2 b 0 {vb}\nr2 b 0 2k", params={"vb": 1.0}) as s2:
            s2.op()
        s1.set_params(va=3.0)
        assert s1.op().voltages == {"a": pytest.approx(3.0)}
        with Session(engine, "v2 b 0 {vb}\nr2 b 0 2k", params={"vb": 1.0}):
            pass
        s1.reset()
        assert s1.op().voltages == {"a": pytest.approx(3.0)}
    finally:
        s1.close()


def test_nested_dc_sweep_is_one_grid(engine):
    # out = (va + vb) / 2 through two equal resistors: every point of the va x vb plane
    with Session(engine, "va a 0 0\nvb b 0 0\nr1 a out 1k\nr2 b out 1k") as s:
        g = s.dc_grid("va", (0.0, -1.8, 7), "vb", (0.1, 1.7, 3), ("out",))
        assert g["out"].shape == (3, 7)
        assert np.allclose(g.inner, np.linspace(0, -1.8, 7)) and np.allclose(g.outer, [0.1, 0.9, 1.7])
        assert np.allclose(g["out"], (g.inner[None, :] + g.outer[:, None]) / 2)
