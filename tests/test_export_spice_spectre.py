"""SPICE and Spectre export; Spectre import; the export -> import -> ngspice round trip."""

import io

import pytest

from cktflow.circuit import Circuit, testbench
from cktflow.export import spectre, spice
from export_helpers import assert_same, reference, simulate, varied_circuits

MILLER = Circuit.from_dict({
    "nodes": [{"type": 0, "pos": 0}, {"type": 1, "pos": 1}, {"type": 6, "pos": 2, "values": {"gm": 1e-3}},
              {"type": 6, "pos": 3, "values": {"gm": 1e-2}}, {"type": 3, "pos": 6, "values": {"C": 1e-12}}],
    "edges": [[0, 2], [2, 3], [2, 4], [3, 1], [4, 1]]})


def _text(module, c, **kw):
    buf = io.StringIO()
    module.write(c, buf, **kw)
    return buf.getvalue()


def test_spice_deck_is_what_cktflow_simulates():
    text = _text(spice, MILLER)
    assert MILLER.canonical_hash() in text
    body = [ln for ln in text.splitlines() if not ln.startswith("*")]
    assert body == [ln for ln in testbench(MILLER).splitlines() if not ln.startswith("*")]
    assert_same(simulate(text), reference(MILLER), what="spice export")


def test_spice_without_testbench_has_only_elements():
    text = _text(spice, MILLER, with_testbench=False)
    assert ".ac" not in text and "Vcktflow_in" not in text
    assert "C4 n1 out 1p" in text


def test_spectre_text():
    text = _text(spectre, MILLER)
    assert "simulator lang=spectre" in text
    assert "G3 (out 0 n1 0) vccs gm=0.01" in text
    assert "C4 (n1 out) capacitor c=1e-12" in text
    assert "ac1 ac start=1 stop=1e11 dec=100" in text
    assert "Vcktflow_in (in 0) vsource dc=0 mag=1" in text


@pytest.mark.parametrize("c", varied_circuits(25, first_seed=100), ids=lambda c: c.topology_hash()[:8])
def test_spectre_round_trip_through_ngspice(c):
    text = _text(spectre, c)
    deck = spectre.to_spice_deck(spectre.read(text))
    assert_same(simulate(deck), reference(c), what=str(c))


OCB_STYLE = """// OCB-style behavioural netlist: one subckt per instance, Spectre scale factors
simulator lang=spectre
global 0
parameters rload=1M
subckt gm_0 (A B)
    I0 (B 0 A 0) vccs gm=2m
    R0 (B 0) resistor r=rload
    C0 (B 0) capacitor c=50f
ends gm_0
subckt r_1(A B)
    R1 (A B) resistor r=0.4M
ends r_1
I0 (net2 net3) gm_0
I1 (net3 OUT) gm_0
I2 ( net3 OUT ) r_1
V0 (net2 0) vsource dc=0 mag=1m type=sine \\
    freq=1k
ac ac start=1 stop=100G dec=100
"""


def test_reads_ocb_style_subcircuits():
    net = spectre.read(OCB_STYLE, source="ocb.scs")
    assert "XI0 net2 net3 gm_0" in net.spice_lines
    assert "GI0 B 0 A 0 0.002" in net.spice_lines
    assert net.sweep.points_per_decade == 100 and net.sweep.fstop == 1e11
    deck = spectre.to_spice_deck(net, input_net="net2", output_net="OUT", source="ocb.scs")
    perf = simulate(deck, input="net2", output="OUT")
    # two inverting stages of gm*R = 2 mS * 1 Mohm each (the 0.4 Mohm resistor feeds forward): positive, ~60 dB
    assert 50 < perf.gain_db < 70


@pytest.mark.parametrize("text, message", [
    ("simulator lang=spice\n", "lang=spectre"),
    ("R1 (a b) resistor r=1k w=2\n", "exactly 'r=value'"),
    ("X1 (a b) bsim4 l=1\n", "unknown master"),
    ("ahdl_include \"evil.va\"\n", "not supported"),
    ("R1 (a b) resistor r=1k+2\n", "cannot read"),
    ("subckt s (a b)\nR1 (a b) resistor r=1\n", "never closed"),
])
def test_refuses_outside_the_subset(text, message):
    with pytest.raises(spectre.SpectreImportError, match=message) as info:
        spectre.read(text, source="bad.scs")
    assert "bad.scs" in str(info.value)
