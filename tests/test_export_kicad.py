"""KiCad export: the file parses with kiutils, and the connectivity rebuilt from its symbols' pins,
wires, labels and power symbols equals the circuit's nets."""

import io
import math

import pytest
from kiutils.schematic import Schematic

from cktflow.export import kicad
from cktflow.export.elements import GROUND, circuit_elements
from cktflow.circuit import wrap_testbench
from export_helpers import assert_same, reference, simulate, varied_circuits

CIRCUITS = varied_circuits(20, first_seed=2000)


def _export(c, tmp_path):
    path = tmp_path / "c.kicad_sch"
    with open(path, "w") as fh:
        kicad.write(c, fh, title="test circuit")
    return Schematic.from_file(str(path))


def _pin_points(sch):
    """(reference, pin number) -> absolute point, from the embedded library symbols."""
    libs = {lib.libId: lib for lib in sch.libSymbols}
    points = {}
    for inst in sch.schematicSymbols:
        lib = libs[inst.libId]
        ref = next(p.value for p in inst.properties if p.key == "Reference")
        mirror = -1 if inst.mirror == "y" else 1
        assert inst.position.angle in (0, None)
        for unit in lib.units:
            for pin in unit.pins:
                x = inst.position.X + mirror * pin.position.X
                y = inst.position.Y - pin.position.Y      # library y grows upwards
                points[(ref, pin.number)] = (round(x, 3), round(y, 3))
    return points


def _nets(sch):
    """Union-find over coincident points: pins, wire ends and labels; power symbols name their net."""
    parent = {}

    def find(p):
        parent.setdefault(p, p)
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    def union(a, b):
        parent[find(a)] = find(b)

    pins = _pin_points(sch)
    wires = [[(round(pt.X, 3), round(pt.Y, 3)) for pt in w.points] for w in sch.graphicalItems if w.type == "wire"]
    for a, b in wires:
        union(a, b)
    names = {}
    for lb in sch.labels:
        names.setdefault(find((round(lb.position.X, 3), round(lb.position.Y, 3))), set()).add(lb.text)
    for pt in pins.values():
        find(pt)
    # labels with the same text join their nets (one sheet)
    by_text = {}
    for root, texts in list(names.items()):
        for t in texts:
            by_text.setdefault(t, []).append(root)
    for roots in by_text.values():
        for r in roots[1:]:
            union(r, roots[0])
    # power symbols join every pin of the net their Value names (GND) wherever they sit
    power = [pt for key, pt in pins.items() if key[0].startswith("#PWR")]
    for pt in power[1:]:
        union(pt, power[0])
    net_of = {key: find(pt) for key, pt in pins.items() if not key[0].startswith("#PWR")}
    grounds = {find(pt) for key, pt in pins.items() if key[0].startswith("#PWR")}
    label_of = {}
    for lb in sch.labels:
        label_of.setdefault(find((round(lb.position.X, 3), round(lb.position.Y, 3))), set()).add(lb.text)
    return net_of, grounds, label_of, wires, pins


@pytest.mark.parametrize("k", range(len(CIRCUITS)))
def test_connectivity_equals_the_circuit(tmp_path, k):
    c = CIRCUITS[k]
    sch = _export(c, tmp_path)
    net_of, grounds, label_of, wires, pins = _nets(sch)
    expected = {}
    for e in circuit_elements(c):
        for pin, net in e.pins.items():
            expected[(kicad.symbol_reference(e), kicad.PIN_NUMBERS[pin])] = net
    assert set(net_of) == set(expected)
    # the same partition of pins into nets, with the same names
    for key, net in expected.items():
        for key2, net2 in expected.items():
            assert (net_of[key] == net_of[key2]) == (net == net2), (key, net, key2, net2)
        root = net_of[key]
        if net == GROUND:
            assert root in grounds and root not in label_of
        elif not net.startswith("x"):      # a series R-C's private net carries no label
            assert label_of.get(root) == {net}, (key, net, label_of.get(root))
            assert root not in grounds
    # no wire end touches another wire, a pin or a label except end to end
    ends = {p for w in wires for p in w}
    for a, b in wires:
        assert a[0] == b[0] or a[1] == b[1], "wires are horizontal or vertical"
        for p in ends | set(pins.values()):
            if p not in (a, b):
                inside = (min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))
                assert not inside, f"{p} lies inside wire {a}-{b}"


def test_simulation_fields(tmp_path):
    sch = _export(CIRCUITS[0], tmp_path)
    fields = {}
    for inst in sch.schematicSymbols:
        props = {p.key: p.value for p in inst.properties}
        fields[props["Reference"]] = props
    vccs = [f for f in fields.values() if f.get("Spice_Primitive") == "G"]
    assert vccs and all(f["Spice_Node_Sequence"] == "1 2 3 4" for f in vccs)
    assert fields["V1"]["Spice_Model"] == "dc 0 ac 1"
    for ref, f in fields.items():
        if not ref.startswith("#PWR"):
            assert f["Spice_Netlist_Enabled"] == "Y" and f["Spice_Model"] == f["Value"]
    assert str(sch.version) == "20211123"


@pytest.mark.parametrize("k", range(0, len(CIRCUITS), 4))
def test_spice_fields_simulate_like_the_circuit(tmp_path, k):
    """Netlist the parsed file the way KiCad's SPICE exporter does (reference, nets in
    Spice_Node_Sequence order, Spice_Model; GND is node 0) and compare ngspice's measurements.
    KiCad itself cannot be run here: Debian's KiCad 6 has no command-line netlister (kicad-cli
    arrived in KiCad 7)."""
    c = CIRCUITS[k]
    sch = _export(c, tmp_path)
    net_of, grounds, label_of, _, _ = _nets(sch)
    names = {}
    for root in set(net_of.values()):
        names[root] = "0" if root in grounds else (sorted(label_of[root])[0] if root in label_of
                                                   else f"net{len(names)}")
    lines = []
    for inst in sch.schematicSymbols:
        props = {p.key: p.value for p in inst.properties}
        if props["Reference"].startswith("#PWR"):
            continue
        seq = props.get("Spice_Node_Sequence", "1 2").split()
        nets = [names[net_of[(props["Reference"], n)]] for n in seq]
        lines.append(f"{props['Reference']} {' '.join(nets)} {props['Spice_Model']}")
    deck = wrap_testbench("\n".join(lines), add_source=False)
    assert_same(simulate(deck), reference(c), what=str(c))


def test_values_are_exact(tmp_path):
    c = CIRCUITS[0]
    sch = _export(c, tmp_path)
    from cktflow.units import parse_si
    values = {next(p.value for p in i.properties if p.key == "Reference"):
              next(p.value for p in i.properties if p.key == "Value") for i in sch.schematicSymbols}
    for e in circuit_elements(c):
        if e.value is not None:
            assert math.isclose(parse_si(values[e.name]), e.value, rel_tol=1e-12)


def test_same_circuit_same_file():
    a, b = io.StringIO(), io.StringIO()
    kicad.write(CIRCUITS[1], a)
    kicad.write(CIRCUITS[1], b)
    assert a.getvalue() == b.getvalue()
